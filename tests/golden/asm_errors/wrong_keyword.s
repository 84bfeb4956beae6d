.core 0 0
    add r1, r2, r3, w=32, n=1
