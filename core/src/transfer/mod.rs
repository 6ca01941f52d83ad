//! Reliable UDP file transfer: sender and receiver state machines (see issue 3).
