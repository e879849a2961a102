"""Direct transcription of one official NICE-GAN training iteration (alpc91/NICE-GAN-pytorch
`NICE.py`: Adam setup, D step, G step), from the reference document section 8. Test-only.

Kept deliberately as the official code is: plain forwards with autograd everywhere, `.detach()`
on the D-step fakes, D-parameter gradients computed (then discarded) in the G step.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn as nn


def official_optimizers(gen2B, gen2A, disA, disB, lr=1e-4, weight_decay=1e-4):
    G_optim = torch.optim.Adam(itertools.chain(gen2B.parameters(), gen2A.parameters()), lr=lr,
                               betas=(0.5, 0.999), weight_decay=weight_decay)
    D_optim = torch.optim.Adam(itertools.chain(disA.parameters(), disB.parameters()), lr=lr,
                               betas=(0.5, 0.999), weight_decay=weight_decay)
    return G_optim, D_optim


def official_step(gen2B, gen2A, disA, disB, G_optim, D_optim, real_A, real_B,
                  adv_weight=1, cycle_weight=10, recon_weight=10):
    """One iteration; returns (Discriminator_loss, Generator_loss) as floats."""
    L1_loss = nn.L1Loss()
    MSE_loss = nn.MSELoss()
    gen2B.train(), gen2A.train(), disA.train(), disB.train()

    # Update D
    D_optim.zero_grad()

    real_LA_logit, real_GA_logit, real_A_cam_logit, _, real_A_z = disA(real_A)
    real_LB_logit, real_GB_logit, real_B_cam_logit, _, real_B_z = disB(real_B)

    fake_A2B = gen2B(real_A_z)
    fake_B2A = gen2A(real_B_z)

    fake_B2A = fake_B2A.detach()
    fake_A2B = fake_A2B.detach()

    fake_LA_logit, fake_GA_logit, fake_A_cam_logit, _, _ = disA(fake_B2A)
    fake_LB_logit, fake_GB_logit, fake_B_cam_logit, _, _ = disB(fake_A2B)

    D_ad_loss_GA = MSE_loss(real_GA_logit, torch.ones_like(real_GA_logit)) + \
        MSE_loss(fake_GA_logit, torch.zeros_like(fake_GA_logit))
    D_ad_loss_LA = MSE_loss(real_LA_logit, torch.ones_like(real_LA_logit)) + \
        MSE_loss(fake_LA_logit, torch.zeros_like(fake_LA_logit))
    D_ad_loss_GB = MSE_loss(real_GB_logit, torch.ones_like(real_GB_logit)) + \
        MSE_loss(fake_GB_logit, torch.zeros_like(fake_GB_logit))
    D_ad_loss_LB = MSE_loss(real_LB_logit, torch.ones_like(real_LB_logit)) + \
        MSE_loss(fake_LB_logit, torch.zeros_like(fake_LB_logit))
    D_ad_cam_loss_A = MSE_loss(real_A_cam_logit, torch.ones_like(real_A_cam_logit)) + \
        MSE_loss(fake_A_cam_logit, torch.zeros_like(fake_A_cam_logit))
    D_ad_cam_loss_B = MSE_loss(real_B_cam_logit, torch.ones_like(real_B_cam_logit)) + \
        MSE_loss(fake_B_cam_logit, torch.zeros_like(fake_B_cam_logit))

    D_loss_A = adv_weight * (D_ad_loss_GA + D_ad_cam_loss_A + D_ad_loss_LA)
    D_loss_B = adv_weight * (D_ad_loss_GB + D_ad_cam_loss_B + D_ad_loss_LB)

    Discriminator_loss = D_loss_A + D_loss_B
    Discriminator_loss.backward()
    D_optim.step()

    # Update G
    G_optim.zero_grad()

    _, _, _, _, real_A_z = disA(real_A)
    _, _, _, _, real_B_z = disB(real_B)

    fake_A2B = gen2B(real_A_z)
    fake_B2A = gen2A(real_B_z)

    fake_LA_logit, fake_GA_logit, fake_A_cam_logit, _, fake_A_z = disA(fake_B2A)
    fake_LB_logit, fake_GB_logit, fake_B_cam_logit, _, fake_B_z = disB(fake_A2B)

    fake_B2A2B = gen2B(fake_A_z)
    fake_A2B2A = gen2A(fake_B_z)

    G_ad_loss_GA = MSE_loss(fake_GA_logit, torch.ones_like(fake_GA_logit))
    G_ad_loss_LA = MSE_loss(fake_LA_logit, torch.ones_like(fake_LA_logit))
    G_ad_loss_GB = MSE_loss(fake_GB_logit, torch.ones_like(fake_GB_logit))
    G_ad_loss_LB = MSE_loss(fake_LB_logit, torch.ones_like(fake_LB_logit))
    G_ad_cam_loss_A = MSE_loss(fake_A_cam_logit, torch.ones_like(fake_A_cam_logit))
    G_ad_cam_loss_B = MSE_loss(fake_B_cam_logit, torch.ones_like(fake_B_cam_logit))

    G_cycle_loss_A = L1_loss(fake_A2B2A, real_A)
    G_cycle_loss_B = L1_loss(fake_B2A2B, real_B)

    fake_A2A = gen2A(real_A_z)
    fake_B2B = gen2B(real_B_z)

    G_recon_loss_A = L1_loss(fake_A2A, real_A)
    G_recon_loss_B = L1_loss(fake_B2B, real_B)

    G_loss_A = adv_weight * (G_ad_loss_GA + G_ad_cam_loss_A + G_ad_loss_LA) + cycle_weight * G_cycle_loss_A + \
        recon_weight * G_recon_loss_A
    G_loss_B = adv_weight * (G_ad_loss_GB + G_ad_cam_loss_B + G_ad_loss_LB) + cycle_weight * G_cycle_loss_B + \
        recon_weight * G_recon_loss_B

    Generator_loss = G_loss_A + G_loss_B
    Generator_loss.backward()
    G_optim.step()

    return Discriminator_loss.item(), Generator_loss.item()

