//! The C ABI: a thin layer over the safe core (see include/pwal.h).
