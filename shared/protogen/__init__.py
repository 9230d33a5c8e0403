"""Generated from protos/ by `python -m shared.devtools.protogen`: do not edit."""
