.core 0 0
    beq r1, r2, 5
