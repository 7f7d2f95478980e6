"""Shared analyses for rules that reason about training loops (TL101, TL401).

Nothing here imports torch: it reads code, it never runs it.
"""
