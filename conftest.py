"""Fixtures shared by tests/ and bench/."""

import pytest
import torch


@pytest.fixture(params=[1, 2], ids=["threads1", "threads2"])
def threads(request):
    """Run the test with torch's intra-op thread count set to 1, then 2 (restored after)."""
    old = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(old)
