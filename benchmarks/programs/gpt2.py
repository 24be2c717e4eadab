"""GPT-2 (Radford et al. 2019) language-model training, in the Hugging Face GPT2LMHeadModel style.

What a user optimizes: the training step (`train_step`): GPT-2 forward with Conv1D
projections, a causal mask sliced from a registered `bias` buffer with Python ints
(`nd`, `ns`), the tanh GELU written out with `math.sqrt(2 / math.pi)`, weight-tied LM head,
shifted-label cross-entropy, AdamW, gradient clipping, and perplexity `math.exp(loss.item())`
for logging.

    prog = build("small", "cpu")
    loss = prog.run(prog.make_batch(0))
"""
import logging
import math

import torch
import torch.nn as nn
from torch.nn import CrossEntropyLoss

from .common import Program

log = logging.getLogger(__name__)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Conv1D(nn.Module):
    """A linear layer with transposed weights (nx, nf), as in the original TF checkpoints."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class Attention(nn.Module):
    def __init__(self, nx, n_ctx, n_head, dropout, scale=True):
        super().__init__()
        self.register_buffer("bias", torch.tril(torch.ones((n_ctx, n_ctx), dtype=torch.uint8)).view(1, 1, n_ctx, n_ctx))
        self.register_buffer("masked_bias", torch.tensor(-1e4))
        self.n_head = n_head
        self.split_size = nx
        self.scale = scale
        self.c_attn = Conv1D(nx * 3, nx)
        self.c_proj = Conv1D(nx, nx)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)

    def _attn(self, q, k, v):
        w = torch.matmul(q, k)
        if self.scale:
            w = w / (float(v.size(-1)) ** 0.5)
        nd, ns = w.size(-2), w.size(-1)
        mask = self.bias[:, :, ns - nd:ns, :ns]
        w = torch.where(mask.bool(), w, self.masked_bias.to(w.dtype))
        w = nn.Softmax(dim=-1)(w)
        w = self.attn_dropout(w)
        return torch.matmul(w, v)

    def merge_heads(self, x):
        x = x.permute(0, 2, 1, 3).contiguous()
        new_x_shape = x.size()[:-2] + (x.size(-2) * x.size(-1),)
        return x.view(*new_x_shape)

    def split_heads(self, x, k=False):
        new_x_shape = x.size()[:-1] + (self.n_head, x.size(-1) // self.n_head)
        x = x.view(*new_x_shape)
        if k:
            return x.permute(0, 2, 3, 1)  # (batch, head, head_features, seq_length)
        return x.permute(0, 2, 1, 3)  # (batch, head, seq_length, head_features)

    def forward(self, x):
        query, key, value = self.c_attn(x).split(self.split_size, dim=2)
        query = self.split_heads(query)
        key = self.split_heads(key, k=True)
        value = self.split_heads(value)
        a = self.merge_heads(self._attn(query, key, value))
        return self.resid_dropout(self.c_proj(a))


class MLP(nn.Module):
    def __init__(self, n_state, nx, dropout):
        super().__init__()
        self.c_fc = Conv1D(n_state, nx)
        self.c_proj = Conv1D(nx, n_state)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(gelu_new(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, n_ctx, nx, n_head, dropout):
        super().__init__()
        self.ln_1 = nn.LayerNorm(nx, eps=1e-5)
        self.attn = Attention(nx, n_ctx, n_head, dropout)
        self.ln_2 = nn.LayerNorm(nx, eps=1e-5)
        self.mlp = MLP(4 * nx, nx, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2LMHeadModel(nn.Module):
    def __init__(self, vocab_size, n_positions, n_embd, n_layer, n_head, dropout=0.1):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(n_positions, n_embd)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block(n_positions, n_embd, n_head, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.data.normal_(mean=0.0, std=0.02)
        self.lm_head.weight = self.wte.weight  # tied input/output embeddings

    def forward(self, input_ids, labels=None):
        input_shape = input_ids.size()
        input_ids = input_ids.view(-1, input_shape[-1])
        position_ids = torch.arange(0, input_shape[-1], dtype=torch.long, device=input_ids.device)
        position_ids = position_ids.unsqueeze(0).view(-1, input_shape[-1])
        hidden_states = self.drop(self.wte(input_ids) + self.wpe(position_ids))
        for block in self.h:
            hidden_states = block(hidden_states)
        hidden_states = self.ln_f(hidden_states)
        lm_logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            shift_logits = lm_logits[..., :-1, :].contiguous()
            shift_labels = labels[..., 1:].contiguous()
            loss_fct = CrossEntropyLoss()
            loss = loss_fct(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1))
        return loss, lm_logits


class GPT2(Program):
    name = "gpt2"
    configs = {
        "small": dict(batch=4, seq=32, vocab=1000, n_positions=64, n_embd=64, n_layer=2, n_head=4, lr=5e-4),
        "full": dict(batch=8, seq=512, vocab=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                     lr=1e-4),
    }

    def setup(self):
        c = self.cfg
        self.model = GPT2LMHeadModel(c.vocab, c.n_positions, c.n_embd, c.n_layer, c.n_head).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=c.lr, weight_decay=0.0)

    def make_batch(self, i):
        c = self.cfg
        tokens = torch.randint(0, c.vocab, (c.batch, c.seq), generator=self.generator(i))
        return tokens.to(self.device)

    def train_step(self, input_ids):
        self.model.train()
        loss, _ = self.model(input_ids, labels=input_ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad()
        log.debug("loss %.4f ppl %.2f", loss.item(), math.exp(loss.item()))
        return loss.detach()


def build(config="small", device="cpu", seed=0):
    return GPT2(config, device, seed)
