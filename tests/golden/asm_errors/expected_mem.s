.core 0 0
    load r1, r2, n=4
