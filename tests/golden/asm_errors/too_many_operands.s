.core 0 0
    jmp L0, L0
L0:
