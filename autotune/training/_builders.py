"""Model builders: an MLP, a 1-D CNN and a recurrent net, each from a trial's parameters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from autotune.exceptions import UnknownNameError
from autotune.training._params import get_bool, get_choice, get_dropout, get_int

_Gain = Literal["relu", "leaky_relu", "tanh", "sigmoid"]  # nonlinearities of nn.init.calculate_gain

# name -> (module, the nonlinearity whose gain He initialisation uses)
_ACTIVATIONS: dict[str, tuple[Callable[[], nn.Module], _Gain]] = {
    "relu": (nn.ReLU, "relu"),
    "leaky_relu": (nn.LeakyReLU, "leaky_relu"),  # slope 0.01 in both places
    "elu": (nn.ELU, "relu"),  # PyTorch has no ELU gain; ReLU's is the usual stand-in
    "tanh": (nn.Tanh, "tanh"),
    "sigmoid": (nn.Sigmoid, "sigmoid"),
}
_INITS = ("xavier", "he")
_POOLS: dict[str, Callable[[int], nn.Module] | None] = {
    "max": nn.MaxPool1d,
    "avg": nn.AvgPool1d,
    "none": None,
}
_CELLS: dict[str, type[nn.LSTM | nn.GRU]] = {"lstm": nn.LSTM, "gru": nn.GRU}

_M = TypeVar("_M", bound=nn.Module)


def init_weights(module: _M, scheme: str = "he", activation: str = "relu") -> _M:
    """Initialise the weights of every linear, convolutional and recurrent layer in place.

    ``"xavier"`` is Glorot uniform, weight variance ``2 / (fan_in + fan_out)``; ``"he"`` is
    Kaiming uniform, variance ``gain**2 / fan_in`` with the gain of ``activation`` (``2 / fan_in``
    for ReLU). Recurrent input weights follow the scheme, recurrent hidden weights are
    orthogonal, and every bias is zero.

    Args:
        module: The model.
        scheme: ``"xavier"`` or ``"he"``.
        activation: The activation that follows the layers (sets the He gain).

    Returns:
        ``module``, for chaining.
    """
    if scheme not in _INITS:
        raise UnknownNameError("init", scheme, list(_INITS))
    if activation not in _ACTIVATIONS:
        raise UnknownNameError("activation", activation, list(_ACTIVATIONS))
    nonlinearity = _ACTIVATIONS[activation][1]

    def init_(weight: torch.Tensor) -> None:
        if scheme == "xavier":
            nn.init.xavier_uniform_(weight)
        else:
            nn.init.kaiming_uniform_(weight, a=0.01, nonlinearity=nonlinearity)

    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d)):
            init_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.RNNBase):
            for name, param in layer.named_parameters():
                if name.startswith("weight_ih"):
                    init_(param)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(param)
                else:
                    nn.init.zeros_(param)
    return module


def _hidden_block(
    layer: nn.Module, size: int, activation: str, batch_norm: bool, dropout: float
) -> list[nn.Module]:
    """``layer -> [batch norm] -> activation -> [dropout]``."""
    block = [layer]
    if batch_norm:
        block.append(nn.BatchNorm1d(size))
    block.append(_ACTIVATIONS[activation][0]())
    if dropout > 0:
        block.append(nn.Dropout(dropout))
    return block


def build_mlp(params: Mapping[str, Any], in_features: int, out_features: int) -> nn.Sequential:
    """A multilayer perceptron mapping `batch x in_features` to `batch x out_features`.

    ``n_layers`` hidden blocks ``Linear(width_k) -> [BatchNorm1d] -> activation -> [Dropout]``,
    then a linear output layer, so the net holds ``n_layers + 1`` linear layers. Only
    ``width_1 .. width_{n_layers}`` are read; an absent ``width_k`` takes ``width_{k-1}``. A
    linear layer followed by batch norm has no bias (the norm's shift replaces it).

    Args:
        params: ``n_layers``, ``width_k``, ``activation``, ``dropout``, ``batch_norm``, ``init``;
            absent keys take :data:`~autotune.training.DEFAULTS`.
        in_features: Input features.
        out_features: Outputs (1 for scalar regression, the class count for classification).

    Returns:
        The initialised model.
    """
    n_layers = get_int(params, "n_layers")
    activation = get_choice(params, "activation", _ACTIVATIONS)
    dropout = get_dropout(params)
    batch_norm = get_bool(params, "batch_norm")
    init = get_choice(params, "init", _INITS)

    layers: list[nn.Module] = []
    fan_in, width = in_features, None
    for k in range(1, n_layers + 1):
        width = get_int(params, f"width_{k}", default=width)
        linear = nn.Linear(fan_in, width, bias=not batch_norm)
        layers += _hidden_block(linear, width, activation, batch_norm, dropout)
        fan_in = width
    layers.append(nn.Linear(fan_in, out_features))
    return init_weights(nn.Sequential(*layers), init, activation)


def build_cnn1d(
    params: Mapping[str, Any], in_channels: int, length: int, n_classes: int
) -> nn.Sequential:
    """A 1-D CNN mapping `batch x in_channels x length` to `batch x n_classes`.

    ``n_conv`` blocks ``Conv1d(channels_k, kernel_size, 'same' padding) -> [BatchNorm1d] ->
    activation -> [pool by 2]``, then ``Flatten -> Linear(fc_width) -> activation -> [Dropout]
    -> Linear(n_classes)``. A block skips its pooling once the sequence is one step long, so
    any ``n_conv`` fits any ``length``. An absent ``channels_k`` takes ``channels_{k-1}``.

    Args:
        params: ``n_conv``, ``channels_k``, ``kernel_size``, ``pool``, ``activation``,
            ``dropout``, ``batch_norm``, ``fc_width``, ``init``; absent keys take
            :data:`~autotune.training.DEFAULTS`.
        in_channels: Input channels.
        length: Input sequence length.
        n_classes: Outputs.

    Returns:
        The initialised model.
    """
    n_conv = get_int(params, "n_conv")
    kernel_size = get_int(params, "kernel_size")
    pool = _POOLS[get_choice(params, "pool", _POOLS)]
    activation = get_choice(params, "activation", _ACTIVATIONS)
    dropout = get_dropout(params)
    batch_norm = get_bool(params, "batch_norm")
    fc_width = get_int(params, "fc_width")
    init = get_choice(params, "init", _INITS)

    layers: list[nn.Module] = []
    fan_in, channels = in_channels, None
    for k in range(1, n_conv + 1):
        channels = get_int(params, f"channels_{k}", default=channels)
        padding = kernel_size // 2
        conv = nn.Conv1d(fan_in, channels, kernel_size, padding=padding, bias=not batch_norm)
        layers += _hidden_block(conv, channels, activation, batch_norm, dropout=0.0)
        length = length + 2 * padding - kernel_size + 1  # == length for odd kernels
        if pool is not None and length >= 2:
            layers.append(pool(2))
            length //= 2
        fan_in = channels
    layers.append(nn.Flatten())
    layers += _hidden_block(
        nn.Linear(fan_in * length, fc_width), fc_width, activation, False, dropout
    )
    layers.append(nn.Linear(fc_width, n_classes))
    return init_weights(nn.Sequential(*layers), init, activation)


class RecurrentNet(nn.Module):
    """A recurrent stack read out by a linear head: `batch x window x features` -> `batch x out`.

    The head reads the top layer's final hidden state (both directions when bidirectional),
    so the module accepts any window length.

    Args:
        rnn: An ``nn.LSTM`` or ``nn.GRU`` built with ``batch_first=True``.
        out_features: Outputs.
    """

    def __init__(self, rnn: nn.LSTM | nn.GRU, out_features: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.n_directions = 2 if rnn.bidirectional else 1
        self.head = nn.Linear(self.n_directions * rnn.hidden_size, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map `batch x window x features` to `batch x out_features`."""
        _, hidden = self.rnn(x)
        if isinstance(hidden, tuple):  # an LSTM returns (h_n, c_n)
            hidden = hidden[0]
        top = hidden[-self.n_directions :]  # `n_directions x batch x hidden_size`
        out: torch.Tensor = self.head(top.transpose(0, 1).reshape(x.shape[0], -1))
        return out


def build_rnn(params: Mapping[str, Any], in_features: int, out_features: int) -> RecurrentNet:
    """A recurrent net mapping `batch x window x in_features` to `batch x out_features`.

    The ``window`` parameter shapes the data (see :func:`~autotune.training.make_windows`), not
    the module. ``dropout`` applies between stacked layers, so only when ``n_layers > 1``.

    Args:
        params: ``cell``, ``hidden_size``, ``n_layers``, ``dropout``, ``bidirectional``,
            ``init``; absent keys take :data:`~autotune.training.DEFAULTS`.
        in_features: Features per time step.
        out_features: Outputs.

    Returns:
        The initialised model.
    """
    cell = _CELLS[get_choice(params, "cell", _CELLS)]
    n_layers = get_int(params, "n_layers")
    dropout = get_dropout(params) if n_layers > 1 else 0.0
    rnn = cell(
        in_features,
        get_int(params, "hidden_size"),
        num_layers=n_layers,
        dropout=dropout,
        bidirectional=get_bool(params, "bidirectional"),
        batch_first=True,
    )
    return init_weights(RecurrentNet(rnn, out_features), get_choice(params, "init", _INITS), "tanh")
