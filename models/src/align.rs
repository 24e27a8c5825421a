//! TODO(owner): align stage.
