"""The service layer: long-lived backends called from functions."""
