"""Running models: the KV-cached engine, its cache, sampling, text generation and process tuning."""
