"""DCGAN (Radford et al. 2016), trained the way the PyTorch examples repository trains it.

What a user optimizes: the training step (`prog.optimize(terra_dyn.optimize)` wraps
`train_step`), which updates the discriminator on a real and a fake batch, then the
generator. Python in the step: two optimizers, a label tensor filled in place between
losses, `.mean().item()` statistics D(x), D(G(z)) that the original prints, and logging.

    prog = build("small", "cpu")
    loss = prog.run(prog.make_batch(0))     # errD + errG
"""
import logging

import torch
import torch.nn as nn

from .common import Program

log = logging.getLogger(__name__)

REAL_LABEL = 1.0
FAKE_LABEL = 0.0


class Generator(nn.Module):
    """z (nz x 1 x 1) -> image (nc x image x image): transposed convs doubling the size."""

    def __init__(self, nz, ngf, nc, image):
        super().__init__()
        mult = image // 8
        layers = [nn.ConvTranspose2d(nz, ngf * mult, 4, 1, 0, bias=False),
                  nn.BatchNorm2d(ngf * mult), nn.ReLU(True)]
        size = 4
        while size < image // 2:
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ngf * mult // 2), nn.ReLU(True)]
            mult //= 2
            size *= 2
        layers += [nn.ConvTranspose2d(ngf * mult, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    """image -> probability it is real: strided convs halving the size down to 4x4."""

    def __init__(self, ndf, nc, image):
        super().__init__()
        layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        mult, size = 1, image // 2
        while size > 4:
            layers += [nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ndf * mult * 2), nn.LeakyReLU(0.2, inplace=True)]
            mult *= 2
            size //= 2
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, input):
        return self.main(input)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


class DCGAN(Program):
    name = "dcgan"
    configs = {
        "small": dict(batch=8, nz=16, ngf=8, ndf=8, nc=3, image=32, lr=2e-4),
        "full": dict(batch=128, nz=100, ngf=64, ndf=64, nc=3, image=64, lr=2e-4),
    }
    module_attrs = ("netG", "netD")

    def setup(self):
        c = self.cfg
        self.netG = Generator(c.nz, c.ngf, c.nc, c.image).to(self.device)
        self.netG.apply(weights_init)
        self.netD = Discriminator(c.ndf, c.nc, c.image).to(self.device)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=c.lr, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=c.lr, betas=(0.5, 0.999))

    def make_batch(self, i):
        c = self.cfg
        real = torch.rand(c.batch, c.nc, c.image, c.image, generator=self.generator(i)) * 2 - 1
        return real.to(self.device)

    def train_step(self, real_cpu):
        netD, netG, criterion = self.netD, self.netG, self.criterion
        b_size = real_cpu.size(0)
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        label = torch.full((b_size,), REAL_LABEL, dtype=real_cpu.dtype, device=real_cpu.device)
        output = netD(real_cpu).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()

        noise = torch.randn(b_size, self.cfg.nz, 1, 1, device=real_cpu.device)
        fake = netG(noise)
        label.fill_(FAKE_LABEL)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.optimizerD.step()

        # (2) Update G network: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(REAL_LABEL)  # fake labels are real for generator cost
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optimizerG.step()

        log.debug("Loss_D: %.4f Loss_G: %.4f D(x): %.4f D(G(z)): %.4f / %.4f",
                  errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)
        return (errD + errG).detach()


def build(config="small", device="cpu", seed=0):
    return DCGAN(config, device, seed)
