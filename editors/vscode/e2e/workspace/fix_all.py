import torch
from torch.utils.data import DataLoader

loader = DataLoader(torch.arange(16.0).reshape(8, 2), batch_size=2)
it = iter(loader)
first = it.next()
second = it.next()
