//! TODO(owner): detect stage.
