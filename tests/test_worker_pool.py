"""The analysis processes: when the pool starts them."""

from __future__ import annotations

import asyncio

import pytest

from torchlint.server.worker import WARM_UP_AFTER_S, WorkerPool

pytestmark = pytest.mark.slow  # starts processes


def test_the_rest_of_the_pool_starts_after_the_first_files_analysis():
    async def main() -> list[int]:
        pool = WorkerPool(size=2)
        counts = []
        try:
            await pool.run(("rules", "", "<rules>", None))
            counts.append(len(pool._all))  # the rules come from the first process alone
            report = await pool.run(("lint", "it = iter(x)\nb = it.next()\n", "f.py", None))
            assert [f.code for f in report.findings] == ["TL201"]
            counts.append(len(pool._all))  # the first file's answer is out: still one
            await asyncio.sleep(WARM_UP_AFTER_S + 0.2)
            counts.append(len(pool._all))
        finally:
            pool.close()
        return counts

    assert asyncio.run(main()) == [1, 1, 2]
