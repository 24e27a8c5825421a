//! TODO(owner): quality stage.
