"""Corpus, nn.Module programs: small models as users write them (MLP, conv net, attention,
layer norm, embedding, RNN cells in Python loops, residual blocks), parameters and buffers,
forward hooks, train vs eval (dropout, batchnorm), Sequential / ModuleList / ModuleDict.

Each factory returns a fresh module; corpus.Entry.fresh_program seeds the RNG first so the
eager and the optimized copy start with identical parameters, and the test compares the
parameters and buffers after every call (batchnorm running stats, counters, EMA buffers).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .corpus import A, program


class MLP(nn.Module):
    def __init__(self, d_in=8, hidden=16, d_out=4):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, d_out)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class ConvNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8 * 2 * 2, classes)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.conv2(x)))
        return self.head(torch.flatten(x, 1))


class SelfAttention(nn.Module):
    def __init__(self, dim=8, heads=2, causal=True):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.register_buffer("mask", torch.tril(torch.ones(16, 16)).bool(), persistent=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5
        if self.causal:
            scores = scores.masked_fill(~self.mask[:t, :t], float("-inf"))
        y = scores.softmax(-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class PreNormBlock(nn.Module):
    """A transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim=8):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels=4):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class ResNetTiny(nn.Module):
    def __init__(self, blocks=3):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.blocks = nn.ModuleList(ResidualBlock(4) for _ in range(blocks))
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.stem(x)
        for blk in self.blocks:
            x = blk(x)
        return self.fc(x.mean((2, 3)))


def _images(r):
    return (r.randn(2, 3, 8, 8),)


def _tokens(r):
    return (r.randn(2, 5, 8),)

# --------------------------------------------------------------------------- small models


@program(lambda r: (r.randn(4, 8),), "MLP: two nn.Linear and F.relu")
def mlp():
    return MLP()


@program(lambda r: (r.randn(4, 8),), "MLP in eval mode with requires_grad off")
def mlp_frozen():
    model = MLP().eval()
    model.requires_grad_(False)
    return model


@program(_images, "conv net in train mode: batchnorm updates running stats")
def convnet_train():
    return ConvNet()


@program(_images, "conv net in eval mode: batchnorm uses running stats")
def convnet_eval():
    return ConvNet().eval()


@program(_tokens, "causal self-attention with a boolean mask buffer")
def self_attention():
    return SelfAttention()


@program(_tokens, "pre-norm transformer block: LayerNorm, attention, GELU MLP, residuals")
def transformer_block():
    return PreNormBlock()


@program(_images, "ResNet-style residual blocks in a ModuleList (train mode)")
def resnet_train():
    return ResNetTiny()


@program(_images, "ResNet-style residual blocks in eval mode")
def resnet_eval():
    return ResNetTiny().eval()


@program(lambda r: (r.randn(3, 8),), "a bare nn.Sequential optimized directly")
def bare_sequential():
    return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2), nn.LogSoftmax(dim=-1))


@program(_images, "nn.Sequential with Flatten, Identity and Unflatten")
def sequential_flatten():
    return nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Identity(), nn.Unflatten(1, (2, 64)), nn.Tanh())


class TextClassifier(nn.Module):
    def __init__(self, vocab=20, dim=6, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids):
        mask = (ids != 0).unsqueeze(-1).float()
        h = self.norm(self.embed(ids)) * mask
        pooled = h.sum(1) / mask.sum(1).clamp(min=1)
        return self.head(pooled)


@program(lambda r: (r.randint(0, 20, 3, 7),), "embedding, padding mask, mean pooling, classifier")
def text_classifier():
    return TextClassifier()


class GRULoop(nn.Module):
    def __init__(self, d_in=4, hidden=6):
        super().__init__()
        self.cell = nn.GRUCell(d_in, hidden)
        self.hidden = hidden

    def forward(self, seq):
        h = seq.new_zeros(seq.shape[1], self.hidden)
        outs = []
        for t in range(seq.shape[0]):
            h = self.cell(seq[t], h)
            outs.append(h)
        return torch.stack(outs), h


@program(lambda r: (r.randn(5, 2, 4),), "GRUCell unrolled over time in a Python loop")
def gru_cell_loop():
    return GRULoop()


class LSTMLoop(nn.Module):
    def __init__(self, d_in=4, hidden=5):
        super().__init__()
        self.cell = nn.LSTMCell(d_in, hidden)
        self.proj = nn.Linear(hidden, 1)

    def forward(self, seq, state=None):
        if state is None:
            zeros = torch.zeros(seq.size(1), self.cell.hidden_size)
            state = (zeros, zeros)
        for x_t in seq.unbind(0):
            state = self.cell(x_t, state)
        h, c = state
        return self.proj(h), (h, c)


@program(lambda r: (r.randn(4, 3, 4),), "LSTMCell loop over unbind(0) with a tuple state")
def lstm_cell_loop():
    return LSTMLoop()


class ElmanRNN(nn.Module):
    """A handwritten RNN cell: h = tanh(x W + h U + b)."""

    def __init__(self, d_in=3, hidden=4):
        super().__init__()
        self.W = nn.Parameter(torch.randn(d_in, hidden) * 0.5)
        self.U = nn.Parameter(torch.randn(hidden, hidden) * 0.5)
        self.b = nn.Parameter(torch.zeros(hidden))

    def forward(self, xs, h):
        for x in xs:
            h = torch.tanh(x @ self.W + h @ self.U + self.b)
        return h


@program(lambda r: ([r.randn(2, 3) for _ in range(4)], r.randn(2, 4)), "nn.Parameter used directly in a loop over a list")
def elman_rnn():
    return ElmanRNN()


@program(lambda r: (r.randn(2, 5, 4),), "nn.LSTM (batch_first) returning output and (h, c)")
def lstm_module():
    return nn.LSTM(4, 3, batch_first=True)


@program(_tokens, "nn.MultiheadAttention inside a module, need_weights")
def multihead_attention():
    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            out, weights = self.mha(x, x, x, need_weights=True)
            return out + x, weights
    return Wrapped()


@program(_tokens, "nn.TransformerEncoderLayer in eval mode")
def transformer_encoder_layer():
    return nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True).eval()

# --------------------------------------------------------------------------- containers of modules


class Tower(nn.Module):
    def __init__(self, depth=4, dim=6):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, dim) for _ in range(depth)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(depth)])

    def forward(self, x):
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms)):
            y = layer(norm(x))
            x = x + y if i % 2 == 0 else torch.tanh(y)
        return x, len(self.layers), self.layers[-1](x)


@program(lambda r: (r.randn(3, 6),), "ModuleList: zip, enumerate, len, indexing by -1")
def module_list_tower():
    return Tower()


class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleDict({"cls": nn.Linear(6, 3), "reg": nn.Linear(6, 1), "aux": nn.Linear(6, 2)})

    def forward(self, x, which=None):
        if which is not None:
            return self.heads[which](x)
        return {name: head(x) for name, head in self.heads.items()}


@program(lambda r: (r.randn(2, 6),), "ModuleDict: items() into a dict comprehension")
def module_dict_all():
    return Heads()


@program(lambda r: A(r.randn(2, 6), which="reg"), "ModuleDict: lookup by a string argument")
def module_dict_lookup():
    return Heads()


class Reversed(nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 4))

    def forward(self, x):
        for layer in reversed(self.seq):
            x = layer(x) if not isinstance(layer, nn.Sigmoid) else x * 2
        return x, self.seq[0](x), self.seq[-1].weight.sum()


@program(lambda r: (r.randn(2, 4),), "reversed(Sequential), isinstance on submodules, Sequential indexing")
def sequential_reversed():
    return Reversed()


class Penalized(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = MLP(4, 6, 2)

    def forward(self, x):
        penalty = sum(p.pow(2).sum() for p in self.parameters())
        n_params = sum(p.numel() for _, p in self.named_parameters())
        return self.body(x), penalty, n_params, [name for name, _ in self.named_children()]


@program(lambda r: (r.randn(3, 4),), "iterating parameters(), named_parameters(), named_children()")
def parameter_iteration():
    return Penalized()

# --------------------------------------------------------------------------- parameters, buffers, modes


class StepCounter(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("ema", torch.zeros(3))

    def forward(self, x):
        self.steps += 1
        with torch.no_grad():
            self.ema.mul_(0.9).add_(x.mean(0), alpha=0.1)
        return self.lin(x) - self.ema


@program(lambda r: (r.randn(4, 3),), "buffers updated in place in forward (counter, EMA under no_grad)")
def buffer_updates():
    return StepCounter()


@program(lambda r: (r.randn(6, 4),), "BatchNorm1d in train mode, inside a user module")
def batchnorm_train():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(4, momentum=0.2)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.bn(x))
    return Net()


class DropoutNet(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        return self.drop(F.relu(self.fc(x))) + F.dropout(x, 0.25, self.training)


@program(lambda r: (r.randn(4, 6),), "dropout in train mode (same RNG seed for eager and ours)")
def dropout_train():
    return DropoutNet()


@program(lambda r: (r.randn(4, 6),), "dropout in eval mode is the identity")
def dropout_eval():
    return DropoutNet().eval()


class Tied(nn.Module):
    def __init__(self, vocab=10, dim=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.shared = nn.Linear(dim, dim)

    def forward(self, ids):
        h = self.shared(self.shared(self.embed(ids)))  # the same submodule twice
        return h @ self.embed.weight.t()  # weight tying


@program(lambda r: (r.randint(0, 10, 2, 3),), "submodule called twice, tied embedding weight")
def shared_weights():
    return Tied()


class Gated(nn.Module):
    def __init__(self, use_residual=True, act="silu"):
        super().__init__()
        self.use_residual, self.act = use_residual, act
        self.fc = nn.Linear(5, 10)

    @property
    def width(self):
        return self.fc.out_features // 2

    def _activate(self, x):
        return F.silu(x) if self.act == "silu" else torch.relu(x)

    def forward(self, x, scale=1.0, mask=None):
        a, b = self.fc(x).split(self.width, dim=-1)
        y = self._activate(a) * torch.sigmoid(b) * scale
        if mask is not None:
            y = y * mask
        return x + y if self.use_residual else y


@program(lambda r: A(r.randn(3, 5), scale=0.5), "module flags, @property, helper method, forward kwargs")
def gated_module():
    return Gated()


@program(lambda r: A(r.randn(3, 5), mask=r.mask(3, 5)), "module without residual, relu branch, mask kwarg")
def gated_module_relu():
    return Gated(use_residual=False, act="relu")


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.ModuleDict({"proj": nn.Sequential(MLP(4, 8, 4), nn.LayerNorm(4))})

    def forward(self, pair):
        left, right = pair
        return {"left": self.inner["proj"](left), "right": self.inner["proj"](right)}


@program(lambda r: ((r.randn(2, 4), r.randn(2, 4)),), "modules nested three deep, tuple input, dict output")
def nested_modules():
    return Encoder()


@program(lambda r: (r.randn(4, 5), r.randint(0, 5, 4)), "loss submodule (nn.CrossEntropyLoss) returning a scalar")
def model_with_criterion():
    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)
            self.criterion = nn.CrossEntropyLoss(label_smoothing=0.1)

        def forward(self, x, target):
            logits = self.fc(x)
            return self.criterion(logits, target), logits.argmax(-1)
    return WithLoss()


@program(lambda r: (r.randn(2, 4, 10),), "Conv1d, GroupNorm, ReLU(inplace=True), AdaptiveAvgPool1d")
def temporal_conv():
    return nn.Sequential(nn.Conv1d(4, 6, 3, padding=1), nn.GroupNorm(2, 6), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool1d(1), nn.Flatten())


@program(lambda r: (r.randn(3, 8),), "torch.autocast(cpu, bfloat16) inside forward")
def autocast_module():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = self.fc(x)
            return y.float().softmax(-1), y.dtype
    return Mixed()

# --------------------------------------------------------------------------- hooks


@program(lambda r: (r.randn(4, 8),), "forward hook on a submodule rewrites its output")
def forward_hook():
    model = MLP()
    model.fc1.register_forward_hook(lambda module, inputs, output: output * 0.5)
    return model


@program(lambda r: (r.randn(4, 8),), "forward pre-hook on the root module rescales the input")
def forward_pre_hook():
    model = MLP()
    model.register_forward_pre_hook(lambda module, args: (args[0] * 2,))
    return model


@program(lambda r: (r.randn(4, 8),), "forward hook that records activation shapes in a Python list",
         may_recompile="the hook's list grew")
def forward_hook_recording():
    model = MLP()
    seen = []

    def record(module, inputs, output):
        seen.append((type(module).__name__, tuple(output.shape)))

    model.fc1.register_forward_hook(record)
    model.fc2.register_forward_hook(record)
    return model, lambda: list(seen)


@program(lambda r: A(r.randn(3, 8), scale=2.0), "forward hook with_kwargs sees the forward's keyword arguments")
def forward_hook_kwargs():
    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 5)

        def forward(self, x, scale=1.0):
            return self.lin(x) * scale

    wrapped = Wrapper()
    wrapped.register_forward_hook(lambda m, args, kwargs, out: out + kwargs.get("scale", 0.0), with_kwargs=True)
    return wrapped
