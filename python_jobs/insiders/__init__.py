"""insiders: customer segmentation for a loyalty programme, on a data warehouse."""

__version__ = "0.1.0"
