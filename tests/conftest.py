import torch

# Tests train tiny models; on a shared 2-core machine extra intra-op threads only contend.
torch.set_num_threads(1)
