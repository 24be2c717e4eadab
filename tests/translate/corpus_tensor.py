"""Corpus, tensor programs: operators, torch.* and torch.nn.functional calls, Tensor methods
and properties, indexing and slicing, dtype promotion and broadcasting.

Each entry is a function as a user would write it; see corpus.py for the entry format.
"""
import math

import torch
import torch.nn.functional as F

from .corpus import case

# --------------------------------------------------------------------------- operators


@case(lambda r: (r.randn(3, 4), r.randn(3, 4)), "binary + - * / on tensors")
def arith_tensors(x, y):
    return x + y, x - y, x * y, x / y


@case(lambda r: (r.randn(3, 4), r.rand(3, 4) + 0.5), "// % ** on float tensors")
def floordiv_mod_pow(x, y):
    return x // y, x % y, y ** x.abs()


@case(lambda r: (r.randn(4, 4),), "unary - + abs() and builtin pow()")
def unary_ops(x):
    return -x, +x, abs(x), pow(x, 2)


@case(lambda r: (r.randn(4, 5), r.randn(5, 3)), "@ matmul operator")
def matmul_operator(a, b):
    return a @ b


@case(lambda r: (r.randn(6),), "tensor with int and float scalars on both sides")
def tensor_scalar_arith(x):
    return 2 * x + 1, 1 - x, x / 4, 3.5 - x * 0.5, 2 ** x, x ** 2, 1 / (x.abs() + 1)


@case(lambda r: (r.randn(5), r.randn(5)), "comparison operators give bool tensors")
def compare_tensors(x, y):
    return x < y, x <= y, x == y, x != y, x > 0.5, x >= y


@case(lambda r: (r.mask(8), r.mask(8)), "& | ^ ~ on bool masks")
def bool_mask_logic(a, b):
    return a & b, a | b, a ^ b, ~a


@case(lambda r: (r.randint(1, 100, 6), r.randint(1, 7, 6)), "integer tensor // % << >> &")
def int_tensor_ops(a, b):
    return a // b, a % b, a << 2, a >> 1, a & 7


@case(lambda r: (r.randn(3, 3),), "augmented assignment on a local tensor (+= -= *= /=)")
def inplace_operators_local(x):
    y = x.clone()
    y += 1
    y *= 2
    y -= x
    y /= 3
    return y


@case(lambda r: (r.randn(4, 8),), "Python number arithmetic folded into a tensor expression")
def python_number_math(x):
    d = x.shape[-1]
    scale = 1.0 / math.sqrt(d)
    bias = (d // 3) % 2 + 2 ** 3 / 4
    return x * scale + bias


@case(lambda r: (r.randn(4, 8),), "chained comparison and min/max on Python ints")
def chained_compare_numbers(x):
    n = x.shape[1]
    k = min(n, 4) if 0 < n <= 16 else max(n, 2)
    return x[:, :k].sum(1) * k

# --------------------------------------------------------------------------- torch.*


@case(lambda r: (r.randn(4, 4), r.randn(4, 4), r.mask(4, 4)), "torch.where with a bool mask")
def torch_where(x, y, m):
    return torch.where(m, x, y), torch.where(x > 0, x, 0.0)


@case(lambda r: (r.randn(2, 3), r.randn(2, 3)), "torch.cat and torch.stack over a list")
def cat_and_stack(x, y):
    return torch.cat([x, y], dim=0), torch.stack((x, y), dim=-1), torch.cat([x, y, x], 1)


@case(lambda r: (r.randn(2, 3, 4), r.randn(2, 4, 5)), "torch.einsum, bmm, baddbmm")
def einsum_bmm(a, b):
    c = torch.einsum("bij,bjk->bik", a, b)
    return c, torch.bmm(a, b), torch.baddbmm(c, a, b, beta=0.5)


@case(lambda r: (r.randn(3, 4), r.randn(4, 5), r.randn(5)), "torch.mm, addmm, outer")
def mm_addmm_outer(a, b, c):
    return torch.mm(a, b), torch.addmm(c, a, b), torch.outer(c, c)


@case(lambda r: (r.randn(3, 5, 4),), "reductions with dim, keepdim and tuples of dims")
def reductions(x):
    return (x.sum(), x.sum(dim=1), x.mean((0, 2), keepdim=True), x.amax(-1),
            x.argmax(dim=1), x.std(0), x.var(dim=2, unbiased=False), x.prod(1))


@case(lambda r: (r.randn(3, 5),), "max/min with a dim return (values, indices) named tuples")
def max_min_namedtuple(x):
    values, indices = x.max(dim=1)
    result = torch.min(x, 0)
    return values, indices, result.values, result.indices, torch.max(x, x.flip(0))


@case(lambda r: (r.randn(4, 6),), "softmax, log_softmax, logsumexp")
def softmax_family(x):
    return torch.softmax(x, -1), F.log_softmax(x, dim=0), torch.logsumexp(x, dim=1)


@case(lambda r: (r.randn(3, 4),), "cumsum, cumprod, sort, topk, flip, roll")
def scans_and_sorts(x):
    sorted_x, order = torch.sort(x, dim=1, descending=True)
    top = x.topk(2, dim=-1)
    return x.cumsum(0), x.cumprod(1), sorted_x, order, top.values, x.flip(1), torch.roll(x, 1, 0)


@case(lambda r: (r.randn(5, 5),), "triu, tril, diag, trace, eye")
def triangular(x):
    return torch.triu(x, 1), x.tril(), torch.diag(x), x.trace(), x * torch.eye(5)


@case(lambda r: (r.randn(3, 4),), "factories: zeros, ones, full, arange, linspace, with dtypes")
def factories(x):
    n, m = x.shape
    idx = torch.arange(m, dtype=torch.float32)
    return (x + torch.zeros(n, m) + torch.ones(m) * 2 + torch.full((n, 1), 0.5) + idx,
            torch.arange(0, n * m, 2), torch.linspace(0, 1, steps=m))


@case(lambda r: (r.randn(3, 4),), "*_like and new_* factories follow the input's dtype")
def like_factories(x):
    return torch.zeros_like(x), torch.ones_like(x) + x, torch.full_like(x, 7), x.new_zeros(2, 3), x.new_ones(x.shape[0])


@case(lambda r: (r.randn(4),), "torch.tensor built from a Python list inside the function")
def tensor_from_list(x):
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4])
    return x * weights + torch.tensor(1.5)


@case(lambda r: (r.randn(3, 4), r.randn(3, 4)), "clamp, lerp, addcmul, addcdiv, clamp_min")
def pointwise_mix(x, y):
    return x.clamp(-0.5, 0.5), torch.lerp(x, y, 0.3), torch.addcmul(x, x, y, value=0.5), x.clamp_min(0), torch.addcdiv(x, y, y.abs() + 1)


@case(lambda r: (r.randn(4, 5), r.randint(0, 4, 2, 5), r.randint(0, 5, 3)), "gather, scatter, index_select")
def gather_scatter(x, idx, cols):
    g = torch.gather(x, 0, idx)
    s = torch.zeros(4, 5).scatter(0, idx, 1.0)
    return g, s, x.index_select(1, cols), x.scatter_add(0, idx, g)


@case(lambda r: (r.randn(3, 4),), "torch.norm, linalg.vector_norm, F.normalize")
def norms(x):
    return torch.norm(x), torch.linalg.vector_norm(x, dim=1), F.normalize(x, dim=-1), x.norm(p=1, dim=0)


@case(lambda r: (r.randn(4, 3), r.randn(4, 3)), "builtin sum() over a list of tensors")
def builtin_sum_of_tensors(x, y):
    return sum([x, y, x * y]), sum((t.sum() for t in (x, y)), torch.tensor(0.0))


@case(lambda r: (r.randn(3, 3),), "x.any() and x.all() kept as tensors")
def any_all(x):
    return (x > 0).any(), (x > -5).all(dim=1), torch.any(x > 1, dim=0)

# --------------------------------------------------------------------------- torch.nn.functional


@case(lambda r: (r.randn(4, 6),), "activations: relu, gelu, silu, tanh, sigmoid, leaky_relu, elu")
def activations(x):
    return F.relu(x), F.gelu(x), F.silu(x), torch.tanh(x), torch.sigmoid(x), F.leaky_relu(x, 0.1), F.elu(x)


@case(lambda r: (r.randn(2, 5), r.randn(3, 5), r.randn(3)), "F.linear with and without bias")
def functional_linear(x, w, b):
    return F.linear(x, w, b), F.linear(x, w)


@case(lambda r: (r.randn(1, 2, 8, 8), r.randn(4, 2, 3, 3), r.randn(4)), "F.conv2d, max_pool2d, avg_pool2d")
def functional_conv(x, w, b):
    y = F.conv2d(x, w, b, padding=1)
    return F.max_pool2d(y, 2), F.avg_pool2d(y, kernel_size=2, stride=2), F.adaptive_avg_pool2d(y, 1)


@case(lambda r: (r.randn(2, 3, 6), r.randn(6), r.randn(6)), "F.layer_norm, group_norm, batch_norm (eval)")
def functional_norms(x, w, b):
    mean, var = torch.zeros(3), torch.ones(3)
    return (F.layer_norm(x, (6,), w, b), F.group_norm(x, 1),
            F.batch_norm(x, mean, var, training=False))


@case(lambda r: (r.randn(4, 5), r.randint(0, 5, 4), r.randn(4, 5)), "cross_entropy, nll_loss, mse_loss, l1_loss")
def losses(logits, target, other):
    return (F.cross_entropy(logits, target), F.nll_loss(F.log_softmax(logits, 1), target, reduction="sum"),
            F.mse_loss(logits, other), F.l1_loss(logits, other, reduction="none"),
            F.binary_cross_entropy_with_logits(logits, other.sigmoid()))


@case(lambda r: (r.randn(1, 2, 4, 4),), "F.pad and F.interpolate")
def pad_interpolate(x):
    return F.pad(x, (1, 1, 2, 0)), F.pad(x, (1, 1, 1, 1), mode="reflect"), F.interpolate(x, scale_factor=2, mode="nearest"), F.interpolate(x, size=(6, 6), mode="bilinear", align_corners=False)


@case(lambda r: (r.randint(0, 10, 2, 3), r.randn(10, 4)), "F.embedding and F.one_hot")
def embedding_one_hot(ids, table):
    return F.embedding(ids, table), F.one_hot(ids, num_classes=10).float()


@case(lambda r: (r.randn(4, 8), r.randn(4, 8)), "cosine_similarity, pairwise_distance, cdist")
def similarity(x, y):
    return F.cosine_similarity(x, y), F.pairwise_distance(x, y), torch.cdist(x, y)


@case(lambda r: (r.randn(2, 2, 5, 4), r.randn(2, 2, 5, 4), r.randn(2, 2, 5, 4)), "F.scaled_dot_product_attention, causal")
def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v, is_causal=True)


@case(lambda r: (r.randn(4, 4),), "F.dropout with training=False is the identity")
def dropout_eval_functional(x):
    return F.dropout(x, p=0.5, training=False) * 2

# --------------------------------------------------------------------------- methods and properties


@case(lambda r: (r.randn(2, 3, 4),), "view, reshape, permute, transpose, flatten, contiguous")
def shape_methods(x):
    return (x.view(6, 4), x.reshape(2, -1), x.permute(2, 0, 1).contiguous(), x.transpose(0, 1),
            x.flatten(1), torch.flatten(x), x.view(-1))


@case(lambda r: (r.randn(3, 1, 4),), "unsqueeze, squeeze, expand, repeat, expand_as")
def broadcast_methods(x):
    y = x.squeeze(1)
    return y.unsqueeze(0), x.squeeze(), x.expand(3, 5, 4), y.repeat(2, 1), x.expand_as(torch.empty(3, 2, 4))


@case(lambda r: (r.randn(6, 4),), "chunk, split, unbind return lists and tuples")
def chunk_split_unbind(x):
    a, b, c = x.chunk(3)
    parts = torch.split(x, [2, 4], dim=0)
    rows = x.unbind(1)
    return a + b - c, parts[1].sum(0), rows[0] * rows[-1]


@case(lambda r: (r.randn(3, 5),), ".T .mT .shape .size() .dim() .ndim .numel() in arithmetic")
def properties(x):
    n, m = x.shape
    batch = x.size(0)
    return x.T @ x, x.mT.shape[0] * x, x * (x.dim() + x.ndim + x.numel() + batch + n * m + x.size(-1))


@case(lambda r: (r.randn(3, 4), r.randint(0, 5, 4, dtype=torch.int32)), ".dtype .device .is_floating_point() on Python values")
def dtype_properties(x, i):
    out = x.to(i.dtype) if x.is_floating_point() and i.dtype == torch.int32 else x
    if x.device.type == "cpu" and not i.is_floating_point():
        out = out + i.float().unsqueeze(0).expand(3, 4)
    return out, x.dtype == torch.float32


@case(lambda r: (r.randn(8, 4),), "shape values drive view and factories")
def shape_driven_view(x):
    b = x.shape[0]
    y = x.view(b // 2, 2, x.shape[1])
    return y.sum(1) + torch.zeros(b // 2, x.size(1)), x.new_zeros(x.shape).add(1)


@case(lambda r: (r.randn(3, 3),), "to(dtype), float(), half(), double(), type_as")
def conversions(x):
    i = (x * 10).to(torch.int64)
    return i, i.float() / 10, x.half(), x.double().sum(), i.type_as(x), x.to(dtype=torch.bfloat16)


@case(lambda r: (r.randn(2, 3),), "clone().detach(), detach(), requires_grad stays off")
def clone_detach(x):
    y = x.clone().detach()
    return y * 2, x.detach() + 1


@case(lambda r: (r.randn(4, 5),), "Tensor methods chained fluently")
def chained_methods(x):
    return x.abs().add(1).log().mul(0.5).exp().sub_(1).clamp(min=0).sum(dim=-1).neg()

# --------------------------------------------------------------------------- indexing and slicing


@case(lambda r: (r.randn(4, 5, 6),), "integer and slice indexing with steps, negatives and Ellipsis")
def basic_indexing(x):
    return x[0], x[:, 1], x[1:3], x[..., ::2], x[-1, -2:], x[:, :, 1:-1:2], x[2, 3, 4]


@case(lambda r: (r.randn(4, 5),), "None / unsqueeze-style indexing")
def none_indexing(x):
    return x[None], x[:, None, :], x[..., None] * x[:, None]


@case(lambda r: (r.randn(6, 3), r.randint(0, 6, 4)), "advanced indexing with tensors and lists")
def advanced_indexing(x, idx):
    return x[idx], x[[0, 2, 5]], x[idx, 1:], x[torch.tensor([1, 0])], x[idx[:2], [0, 2]]


@case(lambda r: (r.randn(4, 5),), "slice bounds from shapes")
def shape_slices(x):
    h = x.shape[0] // 2
    return x[:h] - x[h:], x[:, : x.size(1) - 1]


@case(lambda r: (r.randn(4, 4), r.randn(4)), "__setitem__ on a local copy: ints, slices, rows")
def setitem_local(x, row):
    y = x.clone()
    y[0] = 1.0
    y[:, 1] = row
    y[2:, 2:] = 0
    y[-1, -1] += 5
    return y


@case(lambda r: (r.randn(4, 4), r.mask(4, 4)), "masked_fill and bool-mask setitem (static shapes)")
def mask_setitem(x, m):
    y = x.masked_fill(m, float("-inf")).softmax(-1)
    z = x.clone()
    z[m] = 0.0
    return y, z, x * m, x.where(m, torch.zeros(()))


@case(lambda r: (r.randn(5, 4), r.mask(5, 4)), "x[mask] read has a data-dependent shape",
      whole=False, why="output shape depends on mask values")
def bool_mask_read(x, m):
    return x[m].sum(), x[m]

# --------------------------------------------------------------------------- dtypes and broadcasting


@case(lambda r: (r.randint(0, 10, 4), r.randn(4)), "int tensor + float tensor promotes to float")
def int_plus_float(i, f):
    return i + f, i * 2.5, i / 2, i // 2, (i + 1).float().dtype == torch.float32


@case(lambda r: (r.randn(4, dtype=torch.float16), r.randn(4)), "float16 with float32 promotes to float32")
def half_with_float(h, f):
    return h + f, h * 2, (h.float() @ f).to(torch.float16), h.mean()


@case(lambda r: (r.randn(3, 4, dtype=torch.bfloat16), r.randn(4, 2)), "bfloat16 matmul then cast to float32")
def bfloat16_mix(x, w):
    return (x @ w.to(torch.bfloat16)).float() + w.sum(), x.float().softmax(-1).to(torch.bfloat16)


@case(lambda r: (r.mask(5), r.randint(0, 4, 5), r.randn(5)), "bool + int, bool * float, sum of bools")
def bool_arith(m, i, f):
    return m + i, m * f, m.sum(), m.float().mean(), (m & (i > 1)).long()


@case(lambda r: (r.randn(3, 1), r.randn(1, 4), r.randn(4)), "broadcasting of (3,1), (1,4) and (4,)")
def broadcasting(a, b, c):
    return a + b, a * b - c, (a + c).shape == (3, 4)


@case(lambda r: (r.randn(3), r.randint(0, 3, 3)), "0-dim tensors and Python scalars mix")
def zero_dim_mix(x, i):
    s = x.sum()
    return s * x + 1, i * s, torch.tensor(2) * x, x / x.numel()


@case(lambda r: (r.randn(4, dtype=torch.float64), r.randn(4)), "float64 with float32 and sum(dtype=)")
def double_mix(d, f):
    return d + f, f.sum(dtype=torch.float64), (d * f).float()


@case(lambda r: (r.randn(2, 3),), "complex construction and abs/real/imag")
def complex_values(x):
    z = torch.complex(x, x.flip(1))
    return z.abs(), (z * z).real, z.conj().imag
