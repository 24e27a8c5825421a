//! TODO(owner): embed stage.
