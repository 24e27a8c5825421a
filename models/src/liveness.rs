//! TODO(owner): liveness stage.
