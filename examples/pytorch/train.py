#!/usr/bin/python3
"""The owner's own PyTorch training, as move's example of the bring-your-own-model workflow.

  train.py fit     --data DIR --out M.onnx [--epochs 10] [--seed 0]
      trains a small ResNet on DIR/train (torchvision's ImageFolder) with the usual recipe and
      exports it with torch.onnx.export at its default settings (eval mode: batch norms folded).
  train.py distill --teacher T.pt --data DIR --out S.onnx [--epochs 10] [--seed 0]
      trains a fresh student to match the teacher's softened outputs (temperature 4) on DIR/train:
      the thief's distillation, done in PyTorch.

Each run also saves the state dict beside the ONNX file (M.pt). Inputs are normalised with
mean 0.5 and std 0.25 per channel: give move --onnx-mean 0.5,0.5,0.5 --onnx-std 0.25,0.25,0.25.
"""
import argparse, os, time
import torch, torch.nn as nn, torch.nn.functional as F
import torchvision
from torchvision import transforms

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNet8(nn.Module):
    """A stem and three stages of one basic block (16, 32, 64 channels)."""

    def __init__(self, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def loader(root, size, train):
    t = [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    if train:
        t = [transforms.RandomCrop(size, padding=max(1, size // 8)), transforms.RandomHorizontalFlip()] + t
    ds = torchvision.datasets.ImageFolder(root, transforms.Compose(t))
    return ds, torch.utils.data.DataLoader(ds, batch_size=64, shuffle=train, num_workers=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["fit", "distill"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--teacher", default="")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    ds, dl = loader(os.path.join(a.data, "train"), None, False)
    size = ds[0][0].shape[-1]
    ds, dl = loader(os.path.join(a.data, "train"), size, True)
    classes = len(ds.classes)
    m = ResNet8(classes)
    teacher = None
    if a.mode == "distill":
        teacher = ResNet8(classes)
        teacher.load_state_dict(torch.load(a.teacher))
        teacher.eval()
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs * len(dl))
    t0 = time.time()
    for ep in range(a.epochs):
        m.train()
        total, n = 0.0, 0
        for x, y in dl:
            out = m(x)
            if teacher is None:
                loss = F.cross_entropy(out, y)
            else:
                with torch.no_grad():
                    soft = F.softmax(teacher(x) / 4, 1)
                loss = F.kl_div(F.log_softmax(out / 4, 1), soft, reduction="batchmean") * 16
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            total += loss.item() * len(y); n += len(y)
        print(f"{os.path.basename(a.out)} epoch {ep + 1}/{a.epochs} loss {total / n:.4f}", flush=True)
    m.eval()
    torch.save(m.state_dict(), os.path.splitext(a.out)[0] + ".pt")
    torch.onnx.export(m, torch.zeros(1, 3, size, size), a.out, opset_version=13, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print(f"{os.path.basename(a.out)}: {a.mode}, {a.epochs} epochs in {time.time() - t0:.0f}s -> {a.out}", flush=True)


if __name__ == "__main__":
    main()
