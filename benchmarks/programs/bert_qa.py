"""BERT question answering (SQuAD-style span extraction), as `run_squad.py` fine-tunes it.

What a user optimizes: the training step (`train_step`): BERT encoder, a span head giving
start/end logits, the Hugging Face loss code (squeeze positions if they carry an extra
dimension, clamp them to an ignored index, average two cross-entropies), gradient
clipping, AdamW, a LambdaLR warmup schedule and `tr_loss += loss.item()` bookkeeping.

Batches are padded to max_seq_length like run_squad: fixed shapes, variable real lengths
(question segment, then context, then padding).

    prog = build("small", "cpu")
    loss = prog.run(prog.make_batch(0))
"""
import logging

import torch
import torch.nn as nn
from torch.nn import CrossEntropyLoss

from .bert import BertConfig, BertModel, init_bert_weights, linear_schedule_with_warmup
from .common import Program

log = logging.getLogger(__name__)


class BertForQuestionAnswering(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        init_bert_weights(self, config)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None,
                end_positions=None):
        sequence_output, _ = self.bert(input_ids, attention_mask, token_type_ids)
        logits = self.qa_outputs(sequence_output)
        start_logits, end_logits = logits.split(1, dim=-1)
        start_logits = start_logits.squeeze(-1).contiguous()
        end_logits = end_logits.squeeze(-1).contiguous()
        total_loss = None
        if start_positions is not None and end_positions is not None:
            # If we are on multi-GPU, split add a dimension
            if len(start_positions.size()) > 1:
                start_positions = start_positions.squeeze(-1)
            if len(end_positions.size()) > 1:
                end_positions = end_positions.squeeze(-1)
            # sometimes the start/end positions are outside our model inputs, we ignore these terms
            ignored_index = start_logits.size(1)
            start_positions = start_positions.clamp(0, ignored_index)
            end_positions = end_positions.clamp(0, ignored_index)
            loss_fct = CrossEntropyLoss(ignore_index=ignored_index)
            start_loss = loss_fct(start_logits, start_positions)
            end_loss = loss_fct(end_logits, end_positions)
            total_loss = (start_loss + end_loss) / 2
        return total_loss, start_logits, end_logits


class BertQA(Program):
    name = "bert_qa"
    configs = {
        "small": dict(batch=4, seq=48, vocab=1000, hidden=64, layers=2, heads=4, inter=128,
                      lr=5e-4, warmup=2, total_steps=100),
        "full": dict(batch=16, seq=384, vocab=30522, hidden=768, layers=12, heads=12, inter=3072,
                     lr=3e-5, warmup=100, total_steps=10000),
    }

    def setup(self):
        c = self.cfg
        self.bert_config = BertConfig(vocab_size=c.vocab, hidden_size=c.hidden, num_hidden_layers=c.layers,
                                      num_attention_heads=c.heads, intermediate_size=c.inter)
        self.model = BertForQuestionAnswering(self.bert_config).to(self.device)
        no_decay = ["bias", "LayerNorm.weight"]
        groups = [
            {"params": [p for n, p in self.model.named_parameters() if not any(nd in n for nd in no_decay)],
             "weight_decay": 0.01},
            {"params": [p for n, p in self.model.named_parameters() if any(nd in n for nd in no_decay)],
             "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=c.lr, eps=1e-8)
        self.scheduler = linear_schedule_with_warmup(self.optimizer, c.warmup, c.total_steps)
        self.tr_loss = 0.0
        self.global_step = 0

    def make_batch(self, i):
        c, rng = self.cfg, self.numpy_rng(i)
        input_ids = torch.zeros(c.batch, c.seq, dtype=torch.long)
        token_type_ids = torch.zeros(c.batch, c.seq, dtype=torch.long)
        attention_mask = torch.zeros(c.batch, c.seq, dtype=torch.long)
        start = torch.zeros(c.batch, dtype=torch.long)
        end = torch.zeros(c.batch, dtype=torch.long)
        for b in range(c.batch):
            q_len = int(rng.integers(4, c.seq // 4))
            length = int(rng.integers(c.seq // 2, c.seq + 1))
            ids = rng.integers(5, c.vocab, size=length)
            ids[0], ids[q_len], ids[length - 1] = 1, 2, 2  # [CLS] question [SEP] context [SEP]
            input_ids[b, :length] = torch.from_numpy(ids)
            token_type_ids[b, q_len + 1:length] = 1
            attention_mask[b, :length] = 1
            s = int(rng.integers(q_len + 1, length - 1))
            start[b], end[b] = s, min(length - 2, s + int(rng.integers(0, 5)))
        tensors = (input_ids, attention_mask, token_type_ids, start, end)
        return tuple(t.to(self.device) for t in tensors)

    def train_step(self, batch):
        self.model.train()
        inputs = {"input_ids": batch[0], "attention_mask": batch[1], "token_type_ids": batch[2],
                  "start_positions": batch[3], "end_positions": batch[4]}
        outputs = self.model(**inputs)
        loss = outputs[0]
        loss.backward()
        self.tr_loss += loss.item()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.model.zero_grad()
        self.global_step += 1
        log.debug("step %d lr %.2e avg loss %.4f", self.global_step, self.scheduler.get_last_lr()[0],
                  self.tr_loss / self.global_step)
        return loss.detach()


def build(config="small", device="cpu", seed=0):
    return BertQA(config, device, seed)
