//! Wire types shared by the kiosk and the backend (they speak HTTP and never link each other).
