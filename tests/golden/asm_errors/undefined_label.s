.core 0 0
L0:
    jmp L0
.core 0 1
    jmp L0
