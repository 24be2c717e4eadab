"""terra_dyn demo: optimize a small model and show what was captured."""
import torch

import terra_dyn


def main():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
    x = torch.randn(8, 16)
    fast = terra_dyn.optimize(model)
    expected = model(x)
    got = fast(x)
    print("max abs difference vs eager:", (got - expected).abs().max().item())


if __name__ == "__main__":
    main()
