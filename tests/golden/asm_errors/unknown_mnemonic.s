.core 0 0
    ad r1, r2, r3, n=1, w=8
