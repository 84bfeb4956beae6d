; xbarc assembly
    halt
.core 0 0
