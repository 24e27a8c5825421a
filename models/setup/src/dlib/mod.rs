//! Reading dlib's serialisation format and converting its models.
