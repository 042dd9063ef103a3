/* dirty: a bare-metal guest program that keeps dirtying a working set of guest RAM.
 *
 * The lab guest has no OS, so its RAM never changes and a live migration converges in one
 * pass. This program gives migrations dirty pages to chase: booted as a 32-bit multiboot
 * kernel (QEMU -kernel, libvirt <os><kernel>), it rewrites every 4 KiB page of a working set
 * of MIB mebibytes, forever, optionally capped at RATE MiB/s of pages dirtied.
 *
 * Kernel command line (multiboot cmdline; QEMU prepends the kernel path, which is ignored):
 *   mib=N    working set size in MiB (default 64)
 *   rate=N   cap in MiB/s of dirtied pages, 0 or absent = as fast as the vCPU can go
 * "MiB" matches QEMU's query-dirty-rate, which reports MiB/s under the name "MB/s".
 *
 * Memory layout (physical, no paging):
 *   0x00100000 ..  kernel code, data, 16 KiB stack (well under 2 MiB); QEMU puts the
 *                  multiboot info and the command line just after it
 *   RAM_END - MIB MiB .. RAM_END   the working set, at the top of RAM, where RAM_END is the
 *                  end of RAM from the multiboot memory info, rounded down to 1 MiB.
 *   The lab's random data (QEMU generic loader) starts at 64 MiB and grows upwards, so the
 *   two don't overlap while 64 MiB + data MiB + MIB <= RAM MiB; verifier/lab/dirty.py checks
 *   that before boot. The working set never goes below 2 MiB (refused here otherwise).
 *
 * One 32-bit write per 4 KiB page: QEMU tracks dirtiness per page and migration resends whole
 * pages, so a single store dirties a page exactly as much as rewriting all of it would. More
 * stores per page would only burn TCG time and lower the uncapped dirty rate.
 *
 * The rate cap uses the TSC, calibrated once for 50 ms against PIT channel 2. Under TCG the
 * TSC is the host TSC (paused with the VM), the PIT follows QEMU's virtual clock: the cap is
 * accurate to well under 1 % over a second. Between bursts the vCPU sleeps in HLT, woken by
 * a 1 kHz PIT channel 0 interrupt, so a capped guest doesn't spin a host CPU that the
 * migration itself needs. Uncapped, no interrupts are enabled at all.
 *
 * Messages go to COM1 (absent ports read as 0xff, so writing without a UART is harmless).
 * Build: gcc -m32 -ffreestanding (no libgcc needed: the code avoids 64-bit division).
 */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define MB_HEADER_MAGIC 0x1BADB002u
#define MB_HEADER_FLAGS 0x00000002u /* bit 1: we want the memory info (mem_upper) */
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_INFO_MEMORY 0x1u
#define MB_INFO_CMDLINE 0x4u

#define PAGE 4096u
#define MIB (1u << 20)
#define PIT_HZ 1193182u
#define CALIBRATE_MS 50u
#define MAX_RATE 65535u

__attribute__((section(".multiboot"), used, aligned(4))) static const u32 multiboot_header[3] = {
    MB_HEADER_MAGIC, MB_HEADER_FLAGS, (u32)-(MB_HEADER_MAGIC + MB_HEADER_FLAGS)};

struct multiboot_info {
    u32 flags;
    u32 mem_lower;
    u32 mem_upper;
    u32 boot_device;
    u32 cmdline;
};

struct idt_entry {
    u16 offset_lo;
    u16 selector;
    u8 zero;
    u8 type_attr;
    u16 offset_hi;
} __attribute__((packed));

struct idt_ptr {
    u16 limit;
    u32 base;
} __attribute__((packed));

u8 boot_stack[16384] __attribute__((aligned(16)));
static struct idt_entry idt[256];
extern char _kernel_end[];
extern void irq0_stub(void);
extern void spurious_stub(void);
extern void fault_stub(void);

/* Entry: the multiboot GDT may be gone by now (the spec says so), so load our own before
 * anything can reload a segment register; interrupts need a valid code selector too. */
__asm__(".section .text.start, \"ax\"\n"
        ".globl _start\n"
        "_start:\n"
        "  cli\n"
        "  cld\n"
        "  mov %eax, %esi\n" /* multiboot magic; ebx holds the info pointer */
        "  lgdt gdt_ptr\n"
        "  ljmp $0x08, $1f\n"
        "1:\n"
        "  mov $0x10, %ax\n"
        "  mov %ax, %ds\n"
        "  mov %ax, %es\n"
        "  mov %ax, %fs\n"
        "  mov %ax, %gs\n"
        "  mov %ax, %ss\n"
        "  mov $__bss_start, %edi\n"
        "  mov $__bss_end, %ecx\n"
        "  sub %edi, %ecx\n"
        "  xor %eax, %eax\n"
        "  rep stosb\n"
        "  mov $boot_stack + 16384, %esp\n"
        "  push %ebx\n"
        "  push %esi\n"
        "  call kmain\n"
        "2: cli\n"
        "  hlt\n"
        "  jmp 2b\n"
        /* IRQ0 only wakes the HLT loop; all timekeeping is done with the TSC. */
        ".globl irq0_stub\n"
        "irq0_stub:\n"
        "  push %eax\n"
        "  mov $0x20, %al\n"
        "  outb %al, $0x20\n"
        "  pop %eax\n"
        "  iret\n"
        ".globl spurious_stub\n"
        "spurious_stub:\n"
        "  iret\n"
        ".globl fault_stub\n"
        "fault_stub:\n"
        "  cli\n"
        "  call fault_report\n"
        "  jmp 2b\n"
        ".section .rodata\n"
        ".align 8\n"
        "gdt:\n"
        "  .quad 0\n"
        "  .quad 0x00CF9A000000FFFF\n" /* 0x08: flat 32-bit code */
        "  .quad 0x00CF92000000FFFF\n" /* 0x10: flat data */
        "gdt_ptr:\n"
        "  .word 23\n"
        "  .long gdt\n"
        ".previous\n");

static inline void outb(u16 port, u8 value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }

static inline u8 inb(u16 port) {
    u8 value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline u64 rdtsc(void) {
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static void serial_init(void) {
    outb(0x3F9, 0x00); /* no UART interrupts */
    outb(0x3FB, 0x80); /* DLAB on */
    outb(0x3F8, 0x01); /* 115200 baud */
    outb(0x3F9, 0x00);
    outb(0x3FB, 0x03); /* 8N1 */
    outb(0x3FA, 0xC7);
    outb(0x3FC, 0x03);
}

static void serial_putc(char c) {
    /* Bounded wait: a missing UART reads 0xff (ready), a wedged one mustn't hang the writer. */
    for (u32 i = 0; i < 100000 && !(inb(0x3FD) & 0x20); i++) {
    }
    outb(0x3F8, (u8)c);
}

static void serial_puts(const char *s) {
    while (*s) {
        if (*s == '\n')
            serial_putc('\r');
        serial_putc(*s++);
    }
}

static void serial_putu(u32 v) {
    char buf[11];
    int i = 10;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    serial_puts(&buf[i]);
}

static void serial_puthex(u32 v) {
    serial_puts("0x");
    for (int shift = 28; shift >= 0; shift -= 4)
        serial_putc("0123456789abcdef"[(v >> shift) & 0xF]);
}

__attribute__((noreturn)) static void halt_forever(void) {
    for (;;)
        __asm__ volatile("cli; hlt");
}

__attribute__((noreturn)) void fault_report(void) {
    serial_puts("dirty: unexpected exception or interrupt, halted\n");
    halt_forever();
}

__attribute__((noreturn)) static void fail(const char *message) {
    serial_puts("dirty: error: ");
    serial_puts(message);
    serial_puts(", halted\n");
    halt_forever();
}

/* Parses "key=digits" tokens; returns 1 and sets *out if KEY is present, 0 if absent. */
static int cmdline_value(const char *cmdline, const char *key, u32 *out) {
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *k = key;
        const char *t = p;
        while (*k && *t == *k) {
            k++;
            t++;
        }
        if (!*k && *t == '=') {
            t++;
            u32 value = 0;
            int digits = 0;
            while (*t >= '0' && *t <= '9') {
                if (++digits > 9)
                    fail("number too long on the command line");
                value = value * 10 + (u32)(*t++ - '0');
            }
            if (!digits || (*t && *t != ' '))
                fail("bad number on the command line");
            *out = value;
            return 1;
        }
        while (*p && *p != ' ')
            p++;
    }
    return 0;
}

/* TSC ticks per millisecond, measured against PIT channel 2 in one-shot mode (no IRQ). */
static u32 calibrate_tsc(void) {
    const u32 count = PIT_HZ * CALIBRATE_MS / 1000;
    outb(0x61, (u8)((inb(0x61) & ~0x02) | 0x01)); /* gate channel 2 on, speaker off */
    outb(0x43, 0xB0);                              /* channel 2, lo/hi byte, mode 0 */
    outb(0x42, (u8)(count & 0xFF));
    outb(0x42, (u8)(count >> 8));
    u64 start = rdtsc();
    while (!(inb(0x61) & 0x20)) {
    }
    u64 ticks = rdtsc() - start;
    if (ticks >> 32)
        fail("TSC too fast to calibrate");
    return (u32)ticks / CALIBRATE_MS;
}

static void set_gate(int vector, void (*handler)(void)) {
    u32 offset = (u32)handler;
    idt[vector].offset_lo = (u16)(offset & 0xFFFF);
    idt[vector].selector = 0x08;
    idt[vector].zero = 0;
    idt[vector].type_attr = 0x8E; /* present, ring 0, 32-bit interrupt gate */
    idt[vector].offset_hi = (u16)(offset >> 16);
}

/* A 1 kHz IRQ0 on vector 0x20, everything else masked: the wake-up for the HLT loop. */
static void start_tick(void) {
    static struct idt_ptr ptr;
    for (int v = 0; v < 256; v++)
        set_gate(v, fault_stub);
    set_gate(0x20, irq0_stub);
    set_gate(0x27, spurious_stub); /* the PIC's spurious IRQ7 needs no EOI */
    ptr.limit = sizeof(idt) - 1;
    ptr.base = (u32)idt;
    __asm__ volatile("lidt %0" : : "m"(ptr));

    /* Remap the PICs off the exception vectors: master 0x20-0x27, slave 0x28-0x2f. */
    outb(0x20, 0x11);
    outb(0xA0, 0x11);
    outb(0x21, 0x20);
    outb(0xA1, 0x28);
    outb(0x21, 0x04);
    outb(0xA1, 0x02);
    outb(0x21, 0x01);
    outb(0xA1, 0x01);
    outb(0x21, 0xFE); /* only IRQ0 */
    outb(0xA1, 0xFF);

    const u32 divisor = PIT_HZ / 1000;
    outb(0x43, 0x34); /* channel 0, lo/hi byte, mode 2 (rate generator) */
    outb(0x40, (u8)(divisor & 0xFF));
    outb(0x40, (u8)(divisor >> 8));
    __asm__ volatile("sti");
}

__attribute__((noreturn)) static void dirty_uncapped(u32 base, u32 end) {
    for (u32 pass = 1;; pass++)
        for (u32 p = base; p < end; p += PAGE)
            *(volatile u32 *)p = pass;
}

__attribute__((noreturn)) static void dirty_capped(u32 base, u32 end, u32 rate, u32 tsc_per_ms) {
    /* TSC ticks per page at RATE MiB/s: tsc_per_ms * 1000 * 4096 / (rate * 2^20), reduced so
     * that it stays in 32 bits (no libgcc 64-bit division in a freestanding build). */
    u32 ticks_per_page = (tsc_per_ms * 125u) / (rate * 32u);
    if (ticks_per_page == 0)
        dirty_uncapped(base, end);
    /* Unused credit is capped at 50 ms: after a stall (host preemption) the guest catches up
     * with a short burst, not a long one that would exceed the cap. */
    u64 max_credit = (u64)tsc_per_ms * 50u;
    if (max_credit < ticks_per_page)
        max_credit = ticks_per_page;
    u64 credit = 0;
    u64 last = rdtsc();
    u32 pass = 1;
    u32 p = base;
    start_tick();
    for (;;) {
        u64 now = rdtsc();
        credit += now - last;
        last = now;
        if (credit > max_credit)
            credit = max_credit;
        while (credit >= ticks_per_page) {
            *(volatile u32 *)p = pass;
            p += PAGE;
            if (p >= end) {
                p = base;
                pass++;
            }
            credit -= ticks_per_page;
        }
        __asm__ volatile("hlt"); /* until the next 1 ms tick */
    }
}

void kmain(u32 magic, const struct multiboot_info *info) {
    serial_init();
    if (magic != MB_BOOT_MAGIC)
        fail("not booted by a multiboot loader");
    if (!(info->flags & MB_INFO_MEMORY))
        fail("no memory size in the multiboot info");

    u32 mib = 64, rate = 0;
    if (info->flags & MB_INFO_CMDLINE) {
        const char *cmdline = (const char *)info->cmdline;
        cmdline_value(cmdline, "mib", &mib);
        cmdline_value(cmdline, "rate", &rate);
    }
    if (rate > MAX_RATE)
        fail("rate too high (at most 65535 MiB/s)");

    u32 ram_end = (0x100000u + info->mem_upper * 1024u) & ~(MIB - 1);
    u32 floor = ((u32)_kernel_end + MIB - 1) & ~(MIB - 1);
    if (floor < 2 * MIB)
        floor = 2 * MIB;
    if (mib == 0 || mib > (ram_end - floor) / MIB)
        fail("mib out of range for this RAM size");
    u32 base = ram_end - mib * MIB;

    u32 tsc_per_ms = calibrate_tsc();
    serial_puts("dirty: mib=");
    serial_putu(mib);
    serial_puts(" rate=");
    serial_putu(rate);
    serial_puts(" MiB/s working set ");
    serial_puthex(base);
    serial_puts("-");
    serial_puthex(ram_end);
    serial_puts(" tsc_khz=");
    serial_putu(tsc_per_ms);
    serial_puts("\ndirty: running\n");

    if (rate == 0)
        dirty_uncapped(base, ram_end);
    dirty_capped(base, ram_end, rate, tsc_per_ms);
}
