"""Music Transformer (Huang et al. 2019): a decoder with relative global attention.

Relative attention adds S_rel = skew(Q E_r^T) to the logits, where E_r holds one learned
embedding per relative distance. The "skewing" trick pads a column, reshapes and drops a
row, so S_rel[i, j] = (Q E_r^T)[i, j - i + L - 1]; the embedding rows used are sliced with
Python ints from the sequence length (`max(0, max_seq - len_q)`), and a Python branch pads
or trims when key and query lengths differ.

What a user optimizes: the training step (`train_step`): random crops of MIDI event
sequences (Python `random`), a Noam learning-rate schedule written to the param groups in
Python, forward, label-smoothed cross-entropy ignoring padding, Adam, `loss.item()`.

    prog = build("small", "cpu")
    loss = prog.run(prog.make_batch(0))
"""
import logging
import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import Program

log = logging.getLogger(__name__)

PAD = 388  # 388 MIDI events (note on/off, time shift, velocity), then pad and end tokens
EOS = 389
VOCAB = 390


class RelativeGlobalAttention(nn.Module):
    def __init__(self, h, d, max_seq, dropout):
        super().__init__()
        self.h, self.d, self.dh, self.max_seq = h, d, d // h, max_seq
        self.Wq, self.Wk, self.Wv = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.fc = nn.Linear(d, d)
        self.E = nn.Parameter(torch.randn(max_seq, self.dh) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        b, n, _ = x.shape
        q = self.Wq(x).view(b, n, self.h, self.dh).transpose(1, 2)
        k = self.Wk(x).view(b, n, self.h, self.dh).transpose(1, 2)
        v = self.Wv(x).view(b, n, self.h, self.dh).transpose(1, 2)
        len_k, len_q = k.size(2), q.size(2)
        E = self._get_left_embedding(len_q)
        QE = self._qe_masking(torch.einsum("bhld,md->bhlm", q, E))
        Srel = self._skewing(QE, len_k, len_q)
        logits = (torch.matmul(q, k.transpose(-1, -2)) + Srel) / math.sqrt(self.dh)
        if mask is not None:
            logits = logits.masked_fill(mask, -1e9)
        attention = self.dropout(F.softmax(logits, -1))
        out = torch.matmul(attention, v).transpose(1, 2).reshape(b, n, self.d)
        return self.fc(out)

    def _get_left_embedding(self, len_q):
        starting_point = max(0, self.max_seq - len_q)
        return self.E[starting_point:, :]

    @staticmethod
    def _qe_masking(qe):
        # column m of QE is relative distance m - (L - 1); row i may only see m >= L - 1 - i
        length = qe.size(-1)
        rows = torch.arange(qe.size(-2), device=qe.device)[:, None]
        cols = torch.arange(length, device=qe.device)[None, :]
        return qe * (cols >= length - 1 - rows).to(qe.dtype)

    @staticmethod
    def _skewing(tensor, len_k, len_q):
        padded = F.pad(tensor, [1, 0])
        reshaped = padded.reshape(-1, padded.size(1), padded.size(-1), padded.size(-2))
        Srel = reshaped[:, :, 1:, :]
        if len_k > len_q:
            Srel = F.pad(Srel, [0, 0, 0, 0, 0, 0, 0, len_k - len_q])
        elif len_k < len_q:
            Srel = Srel[:, :, :, :len_k]
        return Srel


class DecoderLayer(nn.Module):
    def __init__(self, d, h, max_seq, dropout):
        super().__init__()
        self.rga = RelativeGlobalAttention(h, d, max_seq, dropout)
        self.FFN_pre = nn.Linear(d, d // 2)
        self.FFN_suf = nn.Linear(d // 2, d)
        self.layernorm1 = nn.LayerNorm(d, eps=1e-6)
        self.layernorm2 = nn.LayerNorm(d, eps=1e-6)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        attn_out = self.dropout1(self.rga(x, mask))
        out1 = self.layernorm1(attn_out + x)
        ffn_out = self.dropout2(self.FFN_suf(F.relu(self.FFN_pre(out1))))
        return self.layernorm2(out1 + ffn_out)


class MusicTransformerModel(nn.Module):
    def __init__(self, d, layers, h, max_seq, dropout=0.1):
        super().__init__()
        self.d = d
        self.embedding = nn.Embedding(VOCAB, d)
        self.pos_scale = math.sqrt(d)
        self.enc_layers = nn.ModuleList([DecoderLayer(d, h, max_seq, dropout) for _ in range(layers)])
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(d, VOCAB)

    def forward(self, x):
        n = x.size(1)
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), diagonal=1)
        pad = (x == PAD)[:, None, None, :]
        mask = causal[None, None] | pad
        h = self.dropout(self.embedding(x) * self.pos_scale)
        for layer in self.enc_layers:
            h = layer(h, mask)
        return self.fc(h)


class MusicTransformer(Program):
    name = "music_transformer"
    configs = {
        "small": dict(batch=4, max_seq=48, d=64, layers=2, heads=4, warmup=40, songs=16, song_len=(24, 160)),
        "full": dict(batch=2, max_seq=2048, d=512, layers=6, heads=8, warmup=4000, songs=64,
                     song_len=(1000, 6000)),
    }

    def setup(self):
        c = self.cfg
        self.model = MusicTransformerModel(c.d, c.layers, c.heads, c.max_seq).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)
        self.step_num = 0

    def make_batch(self, i):
        """A batch of random crops from a synthetic corpus of event sequences of varying length."""
        c, rng = self.cfg, self.numpy_rng(i)
        crop_rng = random.Random(self.seed * 7919 + i)
        rows = []
        for _ in range(c.batch):
            song = rng.integers(0, PAD, size=int(rng.integers(*c.song_len))).tolist() + [EOS]
            if len(song) > c.max_seq + 1:
                start = crop_rng.randrange(0, len(song) - c.max_seq - 1)
                song = song[start:start + c.max_seq + 1]
            rows.append(song + [PAD] * (c.max_seq + 1 - len(song)))
        data = torch.tensor(rows, dtype=torch.long, device=self.device)
        return data[:, :-1], data[:, 1:]

    def noam_rate(self):
        step = max(self.step_num, 1)
        return self.cfg.d ** -0.5 * min(step ** -0.5, step * self.cfg.warmup ** -1.5)

    def train_step(self, batch):
        x, y = batch
        self.step_num += 1
        rate = self.noam_rate()
        for p in self.optimizer.param_groups:
            p["lr"] = rate
        self.model.train()
        logits = self.model(x)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1), ignore_index=PAD, label_smoothing=0.1)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        log.debug("step %d lr %.2e loss %.4f", self.step_num, rate, loss.item())
        return loss.detach()


def build(config="small", device="cpu", seed=0):
    return MusicTransformer(config, device, seed)
