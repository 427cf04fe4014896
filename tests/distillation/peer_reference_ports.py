"""Small ports of the peer methods' losses, and of the HLFD reference code's segmentation loss, from their
authors' code, line for line where the code is rank-free, with the 2D sums over (H, W) written over every
spatial axis so they also run on 3D maps. They share nothing with nnunetv2_hlfd, so the terms are checked
against the references, not themselves."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import Variable


def spatial_dims(x):
    return tuple(range(2, x.ndim))


def positions(x):
    return x[0, 0].numel()


# irfanICMLL/structure_knowledge_distillation, utils/criterion.py CriterionPixelWise
def skd_pixel_wise(preds_S, preds_T):
    C = preds_S.shape[1]
    rows_S, rows_T = (x.movedim(1, -1).reshape(-1, C) for x in (preds_S, preds_T))  # permute(0, 2, 3, 1).view(-1, C)
    softmax_pred_T = F.softmax(rows_T, dim=1)
    return torch.sum(-softmax_pred_T * nn.LogSoftmax(dim=1)(rows_S)) / positions(preds_S)


# ... utils/utils.py L2, similarity, sim_dis_compute; utils/criterion.py CriterionPairWiseforWholeFeatAfterPool
def skd_similarity(feat):
    feat = feat.float()
    norm = ((feat**2).sum(dim=1, keepdim=True)) ** 0.5 + 1e-8
    feat = feat / norm.detach()
    feat = feat.reshape(feat.shape[0], feat.shape[1], -1)
    return torch.einsum("icm,icn->imn", [feat, feat])


def skd_pair_wise(feat_S, feat_T, scale=0.5):
    patch = tuple(int(s * scale) for s in feat_T.shape[2:])
    maxpool = {2: nn.MaxPool2d, 3: nn.MaxPool3d}[feat_T.ndim - 2](
        kernel_size=patch, stride=patch, padding=0, ceil_mode=True
    )
    f_S, f_T = maxpool(feat_S), maxpool(feat_T)
    sim_err = ((skd_similarity(f_T) - skd_similarity(f_S)) ** 2) / (positions(f_T) ** 2) / f_T.shape[0]
    return sim_err.sum()


# YukangWang/IFVD, utils/criterion.py CriterionKD (torch 0.4.1's KLDivLoss() averages over every element)
def ifvd_kd(pred, soft, temperature=1):
    kl = F.kl_div(F.log_softmax(pred / temperature, dim=1), F.softmax(soft / temperature, dim=1), reduction="none")
    return kl.mean()  # KLDivLoss's default ("mean"), written out: today's "mean" warns of its change


# ... utils/criterion.py CriterionIFV; `target` (B, *spatial) holds the ignore value outside the classes
def ifvd_ifv(feat_S, feat_T, target, num_classes):
    size_f = feat_S.shape[2:]
    tar_feat_S = F.interpolate(target.unsqueeze(1).float(), size=size_f, mode="nearest").expand(feat_S.size())
    tar_feat_T = F.interpolate(target.unsqueeze(1).float(), size=size_f, mode="nearest").expand(feat_T.size())
    center_feat_S, center_feat_T = feat_S.clone(), feat_T.clone()
    axes = spatial_dims(feat_S)
    expand = (...,) + (None,) * len(axes)
    for i in range(num_classes):
        mask_feat_S = (tar_feat_S == i).float()
        mask_feat_T = (tar_feat_T == i).float()
        center_feat_S = (1 - mask_feat_S) * center_feat_S + mask_feat_S * (
            (mask_feat_S * feat_S).sum(axes) / (mask_feat_S.sum(axes) + 1e-6)
        )[expand]
        center_feat_T = (1 - mask_feat_T) * center_feat_T + mask_feat_T * (
            (mask_feat_T * feat_T).sum(axes) / (mask_feat_T.sum(axes) + 1e-6)
        )[expand]
    cos = nn.CosineSimilarity(dim=1)
    return nn.MSELoss()(cos(feat_S, center_feat_S), cos(feat_T, center_feat_T))


# EagleMIT/EMKD, utils/loss_functions.py at, importance_maps_distillation
def emkd_at(x, exp):
    return F.normalize(x.pow(exp).mean(1).view(x.size(0), -1))


def emkd_importance_maps(s, t, exp=4):
    return torch.sum((emkd_at(s, exp) - emkd_at(t, exp)).pow(2), dim=1).mean()


# ... region_contrast, region_affinity_distillation; `gt` one-hot (B, 2, *spatial): background, tumour
def emkd_region_contrast(x, gt):
    smooth = 1.0
    mask0, mask1 = gt[:, 0].unsqueeze(1), gt[:, 1].unsqueeze(1)
    axes = spatial_dims(x)
    region0 = torch.sum(x * mask0, dim=axes) / torch.sum(mask0, dim=axes)
    region1 = torch.sum(x * mask1, dim=axes) / (torch.sum(mask1, dim=axes) + smooth)
    return F.cosine_similarity(region0, region1, dim=1)


def emkd_region_affinity(s, t, gt):
    gt = F.interpolate(gt, s.size()[2:])
    return (emkd_region_contrast(s, gt) - emkd_region_contrast(t, gt)).pow(2).mean()


# szagoruyko/attention-transfer, utils.py at, at_loss; cifar.py: + opt.beta * sum(loss_groups)
def at_attention(x):
    return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))


def at_loss(x, y):
    return (at_attention(x) - at_attention(y)).pow(2).mean()


def attention_transfer_objective(groups_S, groups_T, beta=1e3):
    return beta * sum(at_loss(x, y) for x, y in zip(groups_S, groups_T))


# open-mmlab/mmrazor, mmrazor/models/losses/cwd.py ChannelWiseDivergence (view(-1, W * H) over every axis)
def mmrazor_cwd(preds_S, preds_T, tau=1.0, loss_weight=1.0):
    N, C = preds_S.shape[:2]
    P = positions(preds_S)
    softmax_pred_T = F.softmax(preds_T.reshape(-1, P) / tau, dim=1)
    logsoftmax = torch.nn.LogSoftmax(dim=1)
    loss = torch.sum(
        softmax_pred_T * logsoftmax(preds_T.reshape(-1, P) / tau)
        - softmax_pred_T * logsoftmax(preds_S.reshape(-1, P) / tau)
    ) * (tau**2)
    return loss_weight * loss / (C * N)


# vangorade/RethinkingKD_ISBI24 (the HLFD authors), utils/loss_functions.py FocalLoss, dice_loss, calc_loss;
# `target` is their one-hot mask (N, 2, *spatial) of background and tumour
class ReferenceFocalLoss(nn.Module):
    def __init__(self, gamma=0, alpha=None, size_average=True):
        super(ReferenceFocalLoss, self).__init__()
        self.gamma = gamma
        self.alpha = alpha
        if isinstance(alpha, (float, int)):
            self.alpha = torch.Tensor([alpha, 1 - alpha])
        if isinstance(alpha, list):
            self.alpha = torch.Tensor(alpha)
        self.size_average = size_average

    def forward(self, input, target):
        if input.dim() > 2:
            input = input.view(input.size(0), input.size(1), -1)  # N,C,H,W => N,C,H*W
            input = input.transpose(1, 2)  # N,C,H*W => N,H*W,C
            input = input.contiguous().view(-1, input.size(2))  # N,H*W,C => N*H*W,C
        target = target[:, 1:].contiguous()
        target = target.view(-1, 1)
        logpt = F.log_softmax(input, -1)
        logpt = logpt.gather(1, target.to(torch.int64))
        logpt = logpt.view(-1)
        pt = Variable(logpt.data.exp())

        if self.alpha is not None:
            if self.alpha.type() != input.data.type():
                self.alpha = self.alpha.type_as(input.data)
            at = self.alpha.gather(0, target.data.view(-1).to(torch.int64))
            logpt = logpt * Variable(at)

        loss = -((1 - pt) ** self.gamma) * logpt
        if self.size_average:
            return loss.mean()
        else:
            return loss.sum()


def reference_dice_loss(prediction, target):
    smooth = 1.0

    prediction = torch.softmax(prediction, dim=1)[:, 1:].contiguous()
    target = target[:, 1:].contiguous()

    i_flat = prediction.view(-1)
    t_flat = target.view(-1)

    intersection = (i_flat * t_flat).sum()

    return 1 - ((2.0 * intersection + smooth) / (i_flat.sum() + t_flat.sum() + smooth))


def reference_calc_loss(prediction, target, ce_weight=0.5):
    focal_loss = ReferenceFocalLoss(gamma=2, alpha=torch.FloatTensor([1.0, 1.0]))
    ce = focal_loss(prediction, target)

    dice = reference_dice_loss(prediction, target)

    loss = ce * ce_weight + dice * (1 - ce_weight)

    return loss
