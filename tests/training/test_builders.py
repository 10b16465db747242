"""Model builders: structure follows the parameters, initialisation follows theory."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autotune.exceptions import ConfigError, UnknownNameError
from autotune.training import RecurrentNet, build_cnn1d, build_mlp, build_rnn, init_weights


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
def test_mlp_depth_matches_n_layers(n_layers: int) -> None:
    params = {"n_layers": n_layers, **{f"width_{k}": 10 * k for k in range(1, n_layers + 1)}}
    model = build_mlp(params, in_features=5, out_features=2)
    widths = [layer.out_features for layer in _linears(model)]
    assert widths == [10 * k for k in range(1, n_layers + 1)] + [2]
    assert model(torch.randn(4, 5)).shape == (4, 2)


def test_mlp_ignores_widths_beyond_n_layers() -> None:
    params = {"n_layers": 2, "width_1": 8, "width_2": 16, "width_3": 999, "width_4": 999}
    assert [m.out_features for m in _linears(build_mlp(params, 3, 1))] == [8, 16, 1]


def test_mlp_absent_width_takes_the_previous_one() -> None:
    params = {"n_layers": 3, "width_1": 12}
    assert [m.out_features for m in _linears(build_mlp(params, 3, 1))] == [12, 12, 12, 1]


def test_mlp_from_empty_params_uses_defaults() -> None:
    model = build_mlp({}, 3, 1)
    assert [m.out_features for m in _linears(model)] == [64, 64, 1]
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.Dropout)) for m in model.modules())


def test_mlp_block_options() -> None:
    params = {"n_layers": 2, "width_1": 6, "batch_norm": True, "dropout": 0.25, "activation": "elu"}
    model = build_mlp(params, 3, 1)
    kinds = [type(m) for m in model]
    block = [nn.Linear, nn.BatchNorm1d, nn.ELU, nn.Dropout]
    assert kinds == block + block + [nn.Linear]
    assert all(m.p == 0.25 for m in model if isinstance(m, nn.Dropout))
    # a linear layer followed by batch norm has no bias; the output layer keeps its own
    assert [m.bias is None for m in _linears(model)] == [True, True, False]


def test_unknown_activation_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="elu, leaky_relu, relu, sigmoid, tanh"):
        build_mlp({"activation": "swish"}, 3, 1)


def test_bad_dropout_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"params\.dropout: must be in"):
        build_mlp({"dropout": 1.2}, 3, 1)


def _first_weight_std(init: str, activation: str = "relu", fan: int = 512) -> float:
    torch.manual_seed(0)
    params = {"n_layers": 1, "width_1": fan, "init": init, "activation": activation}
    return _linears(build_mlp(params, fan, 1))[0].weight.std().item()


def test_he_and_xavier_scales_follow_theory() -> None:
    fan = 512  # fan_in == fan_out: Xavier var = 2 / (fan + fan) = 1 / fan, He (ReLU) var = 2 / fan
    xavier, he = _first_weight_std("xavier", fan=fan), _first_weight_std("he", fan=fan)
    assert xavier == pytest.approx(math.sqrt(1 / fan), rel=0.02)
    assert he == pytest.approx(math.sqrt(2 / fan), rel=0.02)
    assert he / xavier == pytest.approx(math.sqrt(2), rel=0.03)


@pytest.mark.parametrize(
    ("activation", "gain"),
    [("relu", math.sqrt(2)), ("tanh", 5 / 3), ("sigmoid", 1.0), ("elu", math.sqrt(2))],
)
def test_he_gain_follows_the_activation(activation: str, gain: float) -> None:
    assert _first_weight_std("he", activation) == pytest.approx(gain / math.sqrt(512), rel=0.02)


def test_init_zeroes_biases() -> None:
    model = build_mlp({"n_layers": 2}, 4, 3)
    assert all(torch.count_nonzero(m.bias) == 0 for m in _linears(model))


def test_init_weights_rejects_an_unknown_scheme() -> None:
    with pytest.raises(UnknownNameError, match="he, xavier"):
        init_weights(nn.Linear(2, 2), "lecun")


@pytest.mark.parametrize(
    ("n_conv", "kernel_size", "pool", "length"),
    [(1, 3, "max", 16), (2, 5, "avg", 16), (4, 9, "max", 5), (3, 7, "none", 8), (2, 4, "max", 9)],
)
def test_cnn_output_shape_for_any_depth_and_length(
    n_conv: int, kernel_size: int, pool: str, length: int
) -> None:
    params = {
        "n_conv": n_conv,
        "kernel_size": kernel_size,
        "pool": pool,
        "channels_1": 4,
        "fc_width": 8,
    }
    model = build_cnn1d(params, in_channels=3, length=length, n_classes=5)
    assert model(torch.randn(2, 3, length)).shape == (2, 5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == n_conv and all(c.kernel_size == (kernel_size,) for c in convs)
    pools = [m for m in model.modules() if isinstance(m, (nn.MaxPool1d, nn.AvgPool1d))]
    assert (len(pools) == 0) == (pool == "none")


def test_cnn_reads_only_active_channels() -> None:
    params = {"n_conv": 2, "channels_1": 4, "channels_2": 8, "channels_3": 99, "fc_width": 16}
    model = build_cnn1d(params, in_channels=1, length=12, n_classes=3)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv1d)] == [4, 8]
    assert [m.out_features for m in _linears(model)] == [16, 3]
    assert any(isinstance(m, nn.ReLU) for m in model)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("n_layers", [1, 3])
def test_rnn_maps_batch_window_features_to_batch_out(
    cell: str, bidirectional: bool, n_layers: int
) -> None:
    params = {
        "cell": cell,
        "hidden_size": 6,
        "n_layers": n_layers,
        "bidirectional": bidirectional,
        "dropout": 0.2,
    }
    model = build_rnn(params, in_features=3, out_features=2)
    assert isinstance(model.rnn, nn.LSTM if cell == "lstm" else nn.GRU)
    assert model.rnn.num_layers == n_layers
    assert model.head.in_features == 6 * (2 if bidirectional else 1)
    for window in (5, 11):  # the module takes any window
        assert model(torch.randn(4, window, 3)).shape == (4, 2)


def test_rnn_dropout_only_between_stacked_layers() -> None:
    assert build_rnn({"n_layers": 1, "dropout": 0.3}, 2, 1).rnn.dropout == 0.0
    assert build_rnn({"n_layers": 2, "dropout": 0.3}, 2, 1).rnn.dropout == 0.3


def test_rnn_init_orthogonal_recurrent_weights_and_zero_biases() -> None:
    model = build_rnn({"cell": "gru", "hidden_size": 8, "n_layers": 1}, 3, 1)
    w_hh = model.rnn.get_parameter("weight_hh_l0")  # `3 * hidden x hidden`: orthonormal columns
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(8), atol=1e-5)
    assert torch.count_nonzero(model.rnn.get_parameter("bias_ih_l0")) == 0


def test_rnn_bidirectional_readout_sees_the_whole_window_backwards() -> None:
    torch.manual_seed(0)
    model = build_rnn({"hidden_size": 4, "n_layers": 1, "bidirectional": True}, 1, 1)
    assert isinstance(model, RecurrentNet)
    x = torch.randn(1, 6, 1)
    x_first_changed = x.clone()
    x_first_changed[0, 0, 0] += 1.0
    with torch.no_grad():
        model.head.weight[:, :4] = 0.0  # keep only the backward direction's half of the head
        # The backward direction ends at the first step: its final state depends on x[:, 0].
        # Reading the output at the last step instead would see only x[:, -1] backwards.
        assert not torch.allclose(model(x), model(x_first_changed))
