.core 0 0
    relu r1, r2, n=
