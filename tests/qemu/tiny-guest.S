/* SPDX-License-Identifier: MIT */
/*
 * tests/qemu/tiny-guest.S - a multiboot guest small enough to migrate under nested TCG (the
 * linked rdma:// test runs QEMU inside the soft-RoCE testbed's own TCG guest, where a Linux boot
 * would take minutes). It has no kernel, no timer and no interrupts: it rewrites every page of a
 * working set (WS_START to WS_END) once per tick and checks, before each write, that the page
 * still holds what it wrote there on the pass before. Each page carries the pass number in its first
 * word and the pass number XOR the page's address in its last, so a page the migration lost
 * (stale), zeroed or put at the wrong address is caught by the guest itself on the destination:
 * it prints "rmig-bad ADDR" on COM1 and halts. A tick is 2^27 TSC cycles (0.06 s on a 2.1 GHz
 * host; TCG's TSC follows the host's): after each pass the guest waits for the tick's end and
 * prints "rmig-tick N", N counting from 1 with no gap, which the tests read to see that the
 * guest runs on after a migration. So the guest dirties its whole working set, 2 MiB, every
 * tick (32 MiB/s), whatever the speed of the CPU that runs it.
 *
 * At boot it writes one word into every page from WS_END to 1 MiB below the top of RAM (the
 * multiboot loader's mem_upper), so that RAM is not zero pages a migration could skip: the
 * comparisons of throughput carry all of it.
 *
 * Build: gcc -m32 -c tiny-guest.S && ld -m elf_i386 -Ttext 0x100000 -e _start tiny-guest.o
 * Run:   qemu-system-x86_64 -kernel tiny-guest.elf -m 32M -serial ...   (multiboot 1, ELF32)
 */
	.set MB_MAGIC, 0x1BADB002
	.set MB_FLAGS, 2 /* bit 1: the loader passes mem_lower and mem_upper */
	.set MB_BOOT_MAGIC, 0x2BADB002
	.set COM1, 0x3f8
	.set WS_START, 0x00400000 /* 4 MiB: above the image, the stack and the BIOS areas */
	.set WS_END, 0x00600000 /* a 2 MiB working set: 512 pages */
	.set PAGE, 4096
	.set TICK_CYCLES, 0x08000000

	.text
	.code32
	.align 4
multiboot_header:
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.globl _start
_start:
	cli
	mov $stack_top, %esp
	mov $msg_hello, %esi
	call puts

	/* Fill RAM above the working set: %ebx is the multiboot information, mem_upper (KiB above
	 * 1 MiB) at +8 when bit 0 of its flags is set. */
	mov $WS_END, %edi
	cmp $MB_BOOT_MAGIC, %eax
	jne filled
	testl $1, (%ebx)
	jz filled
	mov 8(%ebx), %edi
	shl $10, %edi /* RAM ends at 1 MiB + this: the last MiB is spared */
	mov $WS_END, %esi
0:	cmp %edi, %esi
	jae filled
	mov %esi, (%esi)
	add $PAGE, %esi
	jmp 0b
filled:
	mov $msg_filled, %esi
	call puts
	mov %edi, %eax
	shr $20, %eax
	call putdec
	mov $msg_mib, %esi
	call puts
	rdtsc
	mov %eax, last_tsc
	mov %edx, last_tsc + 4

pass:
	mov pass_number, %ecx /* what every page holds now (0: nothing written yet) */
	lea 1(%ecx), %edx /* what this pass writes */
	mov $WS_START, %esi
1:	test %ecx, %ecx
	jz 2f
	cmp (%esi), %ecx
	jne bad
	mov %esi, %eax
	xor %ecx, %eax
	cmp PAGE - 4(%esi), %eax
	jne bad
2:	mov %edx, (%esi)
	mov %esi, %eax
	xor %edx, %eax
	mov %eax, PAGE - 4(%esi)
	add $PAGE, %esi
	cmp $WS_END, %esi
	jb 1b
	mov %edx, pass_number

wait:	pause
	rdtsc
	sub last_tsc, %eax
	sbb last_tsc + 4, %edx
	jnz tick /* 2^32 cycles or more */
	cmp $TICK_CYCLES, %eax
	jb wait
tick:
	rdtsc
	mov %eax, last_tsc
	mov %edx, last_tsc + 4
	incl tick_number
	mov $msg_tick, %esi
	call puts
	mov tick_number, %eax
	call putdec
	mov $'\n', %al
	call putc
	jmp pass

/* A page does not hold what this guest wrote: say which, then stop for good. */
bad:
	push %esi
	mov $msg_bad, %esi
	call puts
	pop %eax
	call putdec
	mov $'\n', %al
	call putc
3:	hlt
	jmp 3b

/* putc: %al to COM1, once its transmitter holding register is empty. */
putc:
	push %edx
	push %eax
	mov $COM1 + 5, %dx
4:	in %dx, %al
	test $0x20, %al
	jz 4b
	pop %eax
	mov $COM1, %dx
	out %al, %dx
	pop %edx
	ret

/* puts: the NUL-terminated string at %esi (preserved). */
puts:
	push %esi
	push %eax
5:	lodsb
	test %al, %al
	jz 6f
	call putc
	jmp 5b
6:	pop %eax
	pop %esi
	ret

/* putdec: %eax in decimal. */
putdec:
	push %ebx
	push %ecx
	push %edx
	mov $10, %ebx
	xor %ecx, %ecx
7:	xor %edx, %edx
	div %ebx
	push %edx
	inc %ecx
	test %eax, %eax
	jnz 7b
8:	pop %eax
	add $'0', %al
	call putc
	loop 8b
	pop %edx
	pop %ecx
	pop %ebx
	ret

	.data
msg_hello:
	.asciz "rmig-guest: multiboot, rewriting 2 MiB at 4 MiB\n"
msg_filled:
	.asciz "rmig-guest: RAM filled up to "
msg_mib:
	.asciz " MiB\n"
msg_tick:
	.asciz "rmig-tick "
msg_bad:
	.asciz "rmig-bad "
	.align 4
pass_number:
	.long 0
tick_number:
	.long 0
last_tsc:
	.long 0, 0

	.bss
	.align 16
	.space 4096
stack_top:
