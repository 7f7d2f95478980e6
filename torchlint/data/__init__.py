"""Static data the rules consult (no torch needed to import it)."""
