"""What users write pipelines with: rules, targets, configs, sources and artifact encodings."""
