"""Evaluation: prompt sets, metrics, running a set through both sides."""
