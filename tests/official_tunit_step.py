"""Test-only transcription of TUNIT's official training code: one iteration of `trainGAN_UNSUP`
(train/train_unsupervised.py), its queue initialisation and the helpers of tools/ops.py, from
clovaai/tunit at 405a77c. Only these MIT-licensed parts are transcribed; the networks it drives are
the project's (nicegan.models.tunit.networks).

TUNIT: Truly Unsupervised Image-to-Image Translation
Copyright (c) 2020-present NAVER Corp.
MIT license

Changes from the original, none of which changes a number: `.cuda(args.gpu)` is gone (CPU), `args`
became keyword arguments, the loop over iterations and the logging are dropped, `epoch >=
args.separated` and `epoch >= args.ema_start` became the flags `joint` and `ema`, and the losses are
returned. In calc_iic_loss the expanded p_i and p_j are cloned before the in-place clamps: current
PyTorch refuses in-place writes into an expanded tensor (PyTorch 1.1, the official one, allowed them).
"""
from __future__ import annotations

import torch
from torch import autograd
from torch.nn import functional as F

# --- tools/ops.py ----------------------------------------------------------------------------

def compute_grad_gp(d_out, x_in, is_patch=False):
    batch_size = x_in.size(0)
    grad_dout = autograd.grad(
        outputs=d_out.sum() if not is_patch else d_out.mean(), inputs=x_in,
        create_graph=True, retain_graph=True, only_inputs=True)[0]
    grad_dout2 = grad_dout.pow(2)
    assert (grad_dout2.size() == x_in.size())
    reg = grad_dout2.sum() / batch_size
    return reg


def update_average(model_tgt, model_src, beta=0.999):
    with torch.no_grad():
        param_dict_src = dict(model_src.named_parameters())
        for p_name, p_tgt in model_tgt.named_parameters():
            p_src = param_dict_src[p_name]
            assert (p_src is not p_tgt)
            p_tgt.copy_(beta * p_tgt + (1. - beta) * p_src)


def copy_norm_params(model_tgt, model_src):
    with torch.no_grad():
        src_state_dict = model_src.state_dict()
        tgt_state_dict = model_tgt.state_dict()
        names = [name for name, _ in model_tgt.named_parameters()]
        for n in names:
            del src_state_dict[n]
        tgt_state_dict.update(src_state_dict)
        model_tgt.load_state_dict(tgt_state_dict)


def calc_iic_loss(x_out, x_tf_out, lamb=1.0, EPS=1e-10):
    # has had softmax applied
    _, k = x_out.size()
    p_i_j = compute_joint(x_out, x_tf_out)
    assert (p_i_j.size() == (k, k))

    p_i = p_i_j.sum(dim=1).view(k, 1).expand(k, k).clone()
    p_j = p_i_j.sum(dim=0).view(1, k).expand(k, k).clone()  # but should be same, symmetric

    # avoid NaN losses. Effect will get cancelled out by p_i_j tiny anyway
    p_i_j[(p_i_j < EPS).data] = EPS
    p_j[(p_j < EPS).data] = EPS
    p_i[(p_i < EPS).data] = EPS

    loss = - p_i_j * (torch.log(p_i_j) - lamb * torch.log(p_j) - lamb * torch.log(p_i))

    loss = loss.sum()

    return loss


def compute_joint(x_out, x_tf_out):
    # produces variable that requires grad (since args require grad)

    bn, k = x_out.size()
    assert (x_tf_out.size(0) == bn and x_tf_out.size(1) == k)

    p_i_j = x_out.unsqueeze(2) * x_tf_out.unsqueeze(1)  # bn, k, k
    p_i_j = p_i_j.sum(dim=0)  # k, k
    p_i_j = (p_i_j + p_i_j.t()) / 2.  # symmetrise
    p_i_j = p_i_j / p_i_j.sum()  # normalise

    return p_i_j


def calc_recon_loss(predict, target):
    return torch.mean(torch.abs(predict - target))


def calc_contrastive_loss(query, key, queue, temp=0.07):
    N = query.shape[0]
    K = queue.shape[0]

    zeros = torch.zeros(N, dtype=torch.long)
    key = key.detach()
    logit_pos = torch.bmm(query.view(N, 1, -1), key.view(N, -1, 1))
    logit_neg = torch.mm(query.view(N, -1), queue.t().view(-1, K))

    logit = torch.cat([logit_pos.view(N, 1), logit_neg], dim=1)

    loss = F.cross_entropy(logit / temp, zeros)

    return loss


def calc_adv_loss(logit, mode):
    assert mode in ['d_real', 'd_fake', 'g']
    if mode == 'd_real':
        loss = F.relu(1.0 - logit).mean()
    elif mode == 'd_fake':
        loss = F.relu(1.0 + logit).mean()
    else:
        loss = -logit.mean()

    return loss


def queue_data(data, k):
    return torch.cat([data, k], dim=0)


def dequeue_data(data, K=1024):
    if len(data) > K:
        return data[-K:]
    else:
        return data


def initialize_queue(model_k, x_k, feat_size=128):
    """The body of the official initialize_queue, for its first batch's augmented views `x_k`;
    `model_k(x_k)['cont']` there is the style head, which the project's C.moco computes."""
    queue = torch.zeros((0, feat_size), dtype=torch.float)
    k = model_k.moco(x_k)
    k = k.detach()
    queue = queue_data(queue, k)
    queue = dequeue_data(queue, K=1024)
    return queue


# --- main.py build_model: the optimizers ----------------------------------------------------

def official_optimizers(C, G, D):
    return {'C': torch.optim.Adam(C.parameters(), 1e-4, weight_decay=0.001),
            'D': torch.optim.RMSprop(D.parameters(), 1e-4, weight_decay=0.0001),
            'G': torch.optim.RMSprop(G.parameters(), 1e-4, weight_decay=0.0001)}


# --- train/train_unsupervised.py: one iteration -------------------------------------------------

def official_iteration(networks, opts, x_org, x_tf, queue, joint, ema, w_gp=10.0, w_rec=0.1, w_adv=1.0,
                       w_vec=0.01):
    """One iteration of trainGAN_UNSUP; returns (losses, the updated queue)."""
    D = networks['D']
    G = networks['G']
    C = networks['C']
    G_EMA = networks['G_EMA']
    C_EMA = networks['C_EMA']
    d_opt = opts['D']
    g_opt = opts['G']
    c_opt = opts['C']
    D.train()
    G.train()
    C.train()
    C_EMA.train()
    G_EMA.train()

    x_ref_idx = torch.randperm(x_org.size(0))

    x_ref = x_org.clone()
    x_ref = x_ref[x_ref_idx]

    #################
    # BEGIN Train C #
    #################
    q_cont = C.moco(x_org)
    k_cont = C_EMA.moco(x_tf)
    k_cont = k_cont.detach()

    q_disc = C.iic(x_org)
    k_disc = C.iic(x_tf)

    q_disc = F.softmax(q_disc, 1)
    k_disc = F.softmax(k_disc, 1)

    iic_loss = calc_iic_loss(q_disc, k_disc)
    moco_loss = calc_contrastive_loss(q_cont, k_cont, queue)

    c_loss = moco_loss + 5.0 * iic_loss

    if joint:
        c_loss = 0.1 * c_loss

    c_opt.zero_grad()
    c_loss.backward()
    c_opt.step()
    losses = {'c_loss': c_loss.item(), 'moco': moco_loss.item(), 'iic': iic_loss.item()}

    ####################
    # BEGIN Train GANs #
    ####################
    if joint:
        with torch.no_grad():
            q_disc = C.iic(x_org)
            y_org = torch.argmax(q_disc, 1)
            y_ref = y_org.clone()
            y_ref = y_ref[x_ref_idx]
            s_ref = C.moco(x_ref)
            c_src = G.cnt_encoder(x_org)
            x_fake = G.decode(c_src, s_ref)

        x_ref.requires_grad_()

        d_real_logit, _ = D(x_ref, y_ref)
        d_fake_logit, _ = D(x_fake.detach(), y_ref)

        d_adv_real = calc_adv_loss(d_real_logit, 'd_real')
        d_adv_fake = calc_adv_loss(d_fake_logit, 'd_fake')

        d_adv = d_adv_real + d_adv_fake

        d_gp = w_gp * compute_grad_gp(d_real_logit, x_ref, is_patch=False)

        d_loss = d_adv + d_gp

        d_opt.zero_grad()
        d_adv_real.backward(retain_graph=True)
        d_gp.backward()
        d_adv_fake.backward()
        d_opt.step()

        # Train G
        s_src = C.moco(x_org)
        s_ref = C.moco(x_ref)

        c_src = G.cnt_encoder(x_org)
        x_fake = G.decode(c_src, s_ref)

        x_rec = G.decode(c_src, s_src)

        g_fake_logit, _ = D(x_fake, y_ref)
        g_rec_logit, _ = D(x_rec, y_org)

        g_adv_fake = calc_adv_loss(g_fake_logit, 'g')
        g_adv_rec = calc_adv_loss(g_rec_logit, 'g')

        g_adv = g_adv_fake + g_adv_rec

        g_imgrec = calc_recon_loss(x_rec, x_org)

        s_fake = C.moco(x_fake)
        s_ref_ema = C_EMA.moco(x_ref)

        g_sty_contrastive = calc_contrastive_loss(s_fake, s_ref_ema, queue)

        g_loss = w_adv * g_adv + w_rec * g_imgrec + w_vec * g_sty_contrastive

        g_opt.zero_grad()
        c_opt.zero_grad()
        g_loss.backward()
        c_opt.step()
        g_opt.step()
        losses.update({'d_loss': d_loss.item(), 'd_adv': d_adv.item(), 'd_gp': d_gp.item(),
                       'g_loss': g_loss.item(), 'g_adv': g_adv.item(), 'g_rec': g_imgrec.item(),
                       'g_style': g_sty_contrastive.item()})

    queue = queue_data(queue, k_cont)
    queue = dequeue_data(queue)

    if ema:
        update_average(G_EMA, G)

    update_average(C_EMA, C)
    return losses, queue
