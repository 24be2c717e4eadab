"""BERT sequence classification (GLUE-style), as the Hugging Face text-classification example.

What a user optimizes: the training step (`train_step`): BERT encoder + pooler, dropout and
a classifier, the Hugging Face loss dispatch (`problem_type` chosen in Python from
num_labels and the label dtype), AdamW, a warmup schedule, gradient clipping and an
accuracy computed with `.item()` for logging.

Batches are padded dynamically to the longest sequence (rounded up to a multiple of 8, as
DataCollatorWithPadding(pad_to_multiple_of=8) does), so the sequence length changes from
batch to batch: shape-dynamic inputs.

    prog = build("small", "cpu")
    loss = prog.run(prog.make_batch(0))
"""
import logging

import torch
import torch.nn as nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss

from .bert import BertConfig, BertModel, init_bert_weights, linear_schedule_with_warmup
from .common import Program

log = logging.getLogger(__name__)


class BertForSequenceClassification(nn.Module):
    def __init__(self, config, num_labels):
        super().__init__()
        self.num_labels = num_labels
        self.problem_type = None
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        init_bert_weights(self, config)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        _, pooled_output = self.bert(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(pooled_output))
        loss = None
        if labels is not None:
            if self.problem_type is None:
                if self.num_labels == 1:
                    self.problem_type = "regression"
                elif self.num_labels > 1 and (labels.dtype == torch.long or labels.dtype == torch.int):
                    self.problem_type = "single_label_classification"
                else:
                    self.problem_type = "multi_label_classification"
            if self.problem_type == "regression":
                loss = MSELoss()(logits.squeeze(), labels.squeeze())
            elif self.problem_type == "single_label_classification":
                loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                loss = BCEWithLogitsLoss()(logits, labels)
        return loss, logits


class BertCls(Program):
    name = "bert_cls"
    configs = {
        "small": dict(batch=8, max_seq=64, vocab=1000, hidden=64, layers=2, heads=4, inter=128,
                      labels=3, lr=5e-4, warmup=2, total_steps=100),
        "full": dict(batch=32, max_seq=128, vocab=30522, hidden=768, layers=12, heads=12, inter=3072,
                     labels=3, lr=2e-5, warmup=100, total_steps=10000),
    }

    def setup(self):
        c = self.cfg
        config = BertConfig(vocab_size=c.vocab, hidden_size=c.hidden, num_hidden_layers=c.layers,
                            num_attention_heads=c.heads, intermediate_size=c.inter)
        self.model = BertForSequenceClassification(config, c.labels).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=c.lr, weight_decay=0.01)
        self.scheduler = linear_schedule_with_warmup(self.optimizer, c.warmup, c.total_steps)
        self.correct = 0
        self.seen = 0

    def make_batch(self, i):
        c, rng = self.cfg, self.numpy_rng(i)
        lengths = rng.integers(8, c.max_seq + 1, size=c.batch)
        seq = int(-(-lengths.max() // 8) * 8)  # pad to the longest, rounded up to a multiple of 8
        input_ids = torch.zeros(c.batch, seq, dtype=torch.long)
        attention_mask = torch.zeros(c.batch, seq, dtype=torch.long)
        for b, length in enumerate(lengths):
            ids = rng.integers(5, c.vocab, size=int(length))
            ids[0], ids[-1] = 1, 2
            input_ids[b, :length] = torch.from_numpy(ids)
            attention_mask[b, :length] = 1
        labels = torch.from_numpy(rng.integers(0, c.labels, size=c.batch))
        tensors = (input_ids, attention_mask, torch.zeros_like(input_ids), labels)
        return tuple(t.to(self.device) for t in tensors)

    def train_step(self, batch):
        input_ids, attention_mask, token_type_ids, labels = batch
        self.model.train()
        loss, logits = self.model(input_ids, attention_mask, token_type_ids, labels=labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        self.correct += (logits.argmax(-1) == labels).sum().item()
        self.seen += labels.numel()
        log.debug("loss %.4f acc %.3f", loss.item(), self.correct / self.seen)
        return loss.detach()


def build(config="small", device="cpu", seed=0):
    return BertCls(config, device, seed)
