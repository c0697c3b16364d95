"""Which part of the default model bf16 perturbs: each head's distance with its MatMul inputs rounded
to bf16, and with the teacher run under bf16 autocast (heads in fp32), on 48 magnetic-tile test
images (a diagnosis of numerics, not an accuracy choice). Run from the repository root:
    .venv/bin/python benchmarks/accuracy/bf16_sensitivity.py
"""
import torch, glob, cv2, numpy as np
from ard_edge.model.checkpoint import load_checkpoint
model, h = load_checkpoint("runs/mt/bankgauss/model.ckpt")
files = sorted(glob.glob("../shared/data/magnetic_tile/test/*/*.jpg"))[::8][:48]
imgs = np.stack([cv2.resize(cv2.imread(f, cv2.IMREAD_GRAYSCALE), (256, 256)) for f in files])
x = torch.from_numpy(imgs)[..., None]
print(model.config.heads, [float(m) for m in model.head_mean], [float(s) for s in model.head_std])
bf = lambda t: t.to(torch.bfloat16).float()
with torch.no_grad():
    feats = model.teacher(model.preprocess(x))
    g = model.gaussian
    c = g.pool(feats) - g.mean
    d32 = (c @ g.precision * c).sum(1).clamp_min(0).sqrt()
    d16 = ((bf(c) @ bf(g.precision)) * c).sum(1).clamp_min(0).sqrt()
    L = torch.linalg.cholesky(g.precision.double()).float()
    w16 = (bf(c) @ bf(L)).pow(2).sum(1).sqrt()
    print("gauss fp32", d32[:6].numpy().round(2), "\nquad bf16", d16[:6].numpy().round(2), "\nwhite bf16", w16[:6].numpy().round(2))
    print("gauss |diff| max quad %.3f white %.3f (head std %.3f)" % ((d16-d32).abs().max(), (w16-d32).abs().max(), float(model.head_std[1])))
    b = model.bank
    p = b.embed(feats).flatten(2).transpose(1, 2)
    cross = b.bank_sq - 2 * torch.matmul(p, b.bank.t()); n32 = (cross.amin(2) + (p*p).sum(2)).clamp_min(0).sqrt()
    cross = b.bank_sq - 2 * torch.matmul(bf(p), bf(b.bank).t()); n16 = (cross.amin(2) + (p*p).sum(2)).clamp_min(0).sqrt()
    print("bank max-map fp32", n32.amax(1)[:6].numpy().round(2), "bf16", n16.amax(1)[:6].numpy().round(2), "max|diff| of max %.3f" % (n16.amax(1)-n32.amax(1)).abs().max())
with torch.no_grad():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fb = model.teacher(model.preprocess(x))
    fb = [f.float() for f in fb]
    pb = b.embed(fb).flatten(2).transpose(1, 2)
    cross = b.bank_sq - 2 * torch.matmul(pb, b.bank.t()); nb = (cross.amin(2) + (pb*pb).sum(2)).clamp_min(0).sqrt()
    print("teacher-bf16 bank max diff %.3f" % (nb.amax(1) - n32.amax(1)).abs().max())
    cb = g.pool(fb) - g.mean
    db = (cb @ g.precision * cb).sum(1).clamp_min(0).sqrt()
    print("teacher-bf16 gauss max diff %.3f" % (db - d32).abs().max())
