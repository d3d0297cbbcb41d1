"""zoo.plot, the `zoo` command and the installed package layout."""

import os
import struct

import numpy as np
import pytest

import zoo
from zoo import cli, plot


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", head[16:24])


def test_plot_writes_png_cropped_to_tokens(tmp_path):
    w = np.zeros((5, 6), "float32")
    w[np.arange(3), np.arange(3)] = 1.0
    path = plot.attention(w, ["la", "casa", "roja"], ["the", "red", "house"],
                          os.path.join(tmp_path, "sub", "a.png"), title="t")
    width, height = _png_size(path)
    assert width > 100 and height > 100


def test_plot_averages_heads(tmp_path):
    path = plot.attention(np.ones((4, 2, 2)) / 2, ["a", "b"], ["x", "y"],
                          os.path.join(tmp_path, "h.png"))
    assert os.path.getsize(path) > 0


@pytest.mark.parametrize("weights,src,tgt,message", [
    (np.ones((2, 2)), ["a", "b", "c"], ["x"], "cannot cover"),
    (np.ones(4), ["a"], ["x"], "must be"),
    (np.full((2, 2), np.nan), ["a", "b"], ["x", "y"], "NaN"),
    (np.ones((2, 2)), [], ["x"], "must not be empty"),
])
def test_plot_rejects_bad_input_with_a_clear_message(weights, src, tgt, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        plot.attention(weights, src, tgt, os.path.join(tmp_path, "x.png"))


def test_cli_lists_every_attention(capsys):
    assert cli.main(["attention"]) == 0
    out = capsys.readouterr().out
    for name in zoo.attention.names():
        assert name in out


def test_cli_unknown_attention_names_the_known_ones(capsys):
    assert cli.main(["train", "translator", "--attention", "bahdanu"]) == 2
    err = capsys.readouterr().err
    assert "Unknown attention 'bahdanu'" in err and "additive" in err
    assert "Did you mean" in err


def test_cli_rejects_non_positive_epochs(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "translator", "--epochs", "0"])
    assert "--epochs: epochs must be in [1, 100000], got 0" in capsys.readouterr().err


def test_unknown_attention_error_lists_known_names():
    with pytest.raises(ValueError) as info:
        zoo.attention.get("nope")
    for name in zoo.attention.names():
        assert name in str(info.value)


def test_registry_rejects_kwargs_on_instance_and_bad_dicts():
    layer = zoo.attention.get("dot")
    with pytest.raises(ValueError, match="cannot be applied"):
        zoo.attention.get(layer, dropout=0.1)
    with pytest.raises(ValueError, match="class_name"):
        zoo.attention.get({"units": 3})
    with pytest.raises(TypeError, match="Cannot interpret"):
        zoo.attention.get(3.5)


def test_registry_config_errors_surface_as_the_constructors_own():
    """Keras wraps a constructor's ValueError in a TypeError that opens with the whole config;
    the registry hands back the original, by either spelling of the class name."""
    import zoo.layers

    bad = {"vocab_size": 10, "attention_position": "middle"}
    for name in ("RNNDecoder", "zoo>RNNDecoder"):
        with pytest.raises(ValueError, match="attention_position must be") as info:
            zoo.layers.NETWORKS.get({"class_name": name, "config": bad})
        assert "Error when deserializing" not in str(info.value)


def test_bad_inputs_get_clear_errors():
    layer = zoo.attention.get("dot")
    q = np.ones((2, 3, 4), "float32")
    with pytest.raises(ValueError, match="same feature size"):
        layer.attend(query=q, value=np.ones((2, 5, 6), "float32"))
    with pytest.raises(ValueError, match=r"query must have shape \(batch, time, features\)"):
        zoo.attention.get("dot").attend(query=np.ones((3, 4), "float32"), value=q)
    with pytest.raises(ValueError, match="value_mask has 4 steps but its tensor has 3"):
        zoo.attention.get("dot").attend(query=q, value=q, value_mask=np.ones((2, 4), bool))
    with pytest.raises(TypeError, match="must be a float tensor"):
        zoo.attention.get("dot").attend(query=np.ones((2, 3, 4), "int32"), value=q)
    with pytest.raises(ValueError, match="not built"):
        zoo.attention.get("additive").prepare(value=q)
    with pytest.raises(ValueError, match="mode must be one of"):
        zoo.attention.get("monotonic", mode="sometimes")


def test_export_and_serving_install_under_zoo():
    import zoo.export
    import zoo.serving

    # Editable: the repository's export/ and serving/; installed: site-packages/zoo/export.
    assert os.path.basename(os.path.dirname(zoo.export.__file__)) == "export"
    assert os.path.basename(os.path.dirname(zoo.serving.__file__)) == "serving"
    assert zoo.export.__name__ == "zoo.export" and zoo.serving.__name__ == "zoo.serving"


def test_embedded_corpus_is_real_and_attributed():
    from zoo.data import anki_spa_eng_pairs, corpus_path

    pairs = anki_spa_eng_pairs()
    assert len(pairs) == 118964  # the whole CC-BY file
    assert all(s.strip() and e.strip() for s, e in pairs)
    assert anki_spa_eng_pairs(limit=5) == pairs[:5]
    assert os.path.exists(corpus_path("anki_spa_eng", "ATTRIBUTION.md"))
    with pytest.raises(FileNotFoundError, match="anki_spa_eng"):
        corpus_path("anki_spa_eng", "missing.tsv")
