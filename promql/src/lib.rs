//! PromQL evaluation over an in-memory series store (placeholder; the engine lands here).
