"""Recurrent layers: RNN, LSTM and the LSTMUnit step they share the cell of."""

from . import lstm, lstm_unit, rnn

__all__ = ["lstm", "lstm_unit", "rnn"]
