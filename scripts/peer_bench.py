#!/usr/bin/python3
"""PyTorch side of `move bench --size N`: the workloads of ../shared/peer/torch_bench.py
(train: forward + backward + SGD step; infer: eval-mode forward; grad1: the cross-entropy
gradient of one image with respect to every weight) at any image size, for its CIFAR models
and for torchvision's ImageNet ResNet-18/34 (10 classes, the layout move's resnet18/34 use).
Batches follow move's bench.Batches: 128/256 up to 64 pixels, 16/32 above.
Usage: peer_bench.py [--model resnet18] [--size 224] [--threads 2] [--seconds 10]
Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision).
"""
import argparse, os, sys
import torch, torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peer"))
import torch_bench  # noqa: E402  (the peer's models and timing)


def build(name):
    if name in ("resnet18", "resnet34"):
        import torchvision
        return getattr(torchvision.models, name)(num_classes=10)
    return torch_bench.build(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = build(a.model)
    tb, ib = (16, 32) if a.size > 64 else (128, 256)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    xb, yb = torch.randn(tb, 3, a.size, a.size), torch.randint(0, 10, (tb,))
    xi = torch.randn(ib, 3, a.size, a.size)
    x1, y1 = torch.randn(1, 3, a.size, a.size), torch.randint(0, 10, (1,))

    def train():
        m.train(); opt.zero_grad(); F.cross_entropy(m(xb), yb).backward(); opt.step()

    def infer():
        m.eval()
        with torch.no_grad():
            m(xi)

    ps = list(m.parameters())

    def grad1():
        m.eval(); torch.autograd.grad(F.cross_entropy(m(x1), y1), ps)

    params = sum(p.numel() for p in ps)
    print(f"torch {torch.__version__} threads {a.threads} model {a.model} size {a.size} params {params}")
    print(f"train {torch_bench.rate(train, tb, a.seconds):.1f} img/s")
    print(f"infer {torch_bench.rate(infer, ib, a.seconds):.1f} img/s")
    print(f"grad1 {1000.0 / torch_bench.rate(grad1, 1, a.seconds):.2f} ms/img")


if __name__ == "__main__":
    main()
