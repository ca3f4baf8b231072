/* SPDX-License-Identifier: MIT */
/* bindings/cli/parse.c - the value parsers and the byte formatter every rmig command and benchmark
 * shares (declared in cli/options.h). Nothing here calls librmig, so a tool that links only the
 * transport (rmig-bw) uses them too. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bindings/cli/options.h"

int cli_parse_size(const char *text, uint64_t *value_p)
{
	char *end;
	double v = strtod(text, &end);

	if (end == text || !(v >= 0) || v > 1.8e19)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v *= 1024.0;
		end++;
		break;
	case 'm':
	case 'M':
		v *= 1024.0 * 1024.0;
		end++;
		break;
	case 'g':
	case 'G':
		v *= 1024.0 * 1024.0 * 1024.0;
		end++;
		break;
	case 't':
	case 'T':
		v *= 1024.0 * 1024.0 * 1024.0 * 1024.0;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > 1.8e19)
		return -EINVAL;
	*value_p = (uint64_t)v;
	return 0;
}

int cli_parse_u32(const char *command, const char *option, const char *text, uint32_t min,
		  uint32_t *value_p)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || end == text || *end || v < min || v > UINT32_MAX || text[0] == '-') {
		fprintf(stderr, "rmig %s: %s %s: a whole number >= %u\n", command, option, text,
			min);
		return -EINVAL;
	}
	*value_p = (uint32_t)v;
	return 0;
}

const char *cli_format_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", v, units[u]);
	return buf;
}
