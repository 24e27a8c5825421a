//! TODO(owner): gallery stage.
