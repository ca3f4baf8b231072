/* SPDX-License-Identifier: MIT */
/* bench/plan-sim-trace.c - reads a CPU utilisation trace for plan-sim: PlanetLab/CloudSim style
 * (one VM per row, optionally named), one VM per column under a header of names, or CloudSim's
 * own layout, a directory of one file per VM. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "bench/plan-sim.h"

static int sim_is_number(const char *field)
{
	char *end;

	while (isspace((unsigned char)*field))
		field++;
	if (!*field)
		return 0;
	errno = 0;
	strtod(field, &end);
	while (isspace((unsigned char)*end))
		end++;
	return errno == 0 && *end == '\0';
}

/* One sample: a non-negative number, percent unless fraction; 0, or -1 when field is not one. */
static int sim_sample(const char *field, int fraction, double *value_p)
{
	double value = strtod(field, NULL);

	if (!sim_is_number(field) || !(value >= 0.0))
		return -1;
	*value_p = fraction ? value : value / 100.0;
	return 0;
}

/* Split line at commas (or whitespace when there is no comma) in place. */
static size_t sim_split(char *line, char ***fields_p, size_t *capacity_p)
{
	const char *separators = strchr(line, ',') ? ",\r\n" : " \t\r\n";
	size_t count = 0;
	char *save = NULL;

	for (char *field = strtok_r(line, separators, &save); field;
	     field = strtok_r(NULL, separators, &save)) {
		if (count == *capacity_p) {
			size_t capacity = *capacity_p ? 2 * *capacity_p : 512;
			char **grown = realloc(*fields_p, capacity * sizeof(*grown));

			if (!grown)
				return SIZE_MAX;
			*fields_p = grown;
			*capacity_p = capacity;
		}
		(*fields_p)[count++] = field;
	}
	return count;
}

void plan_sim_trace_free(struct plan_sim_trace *trace)
{
	for (size_t v = 0; trace->names && v < trace->vms; v++)
		free(trace->names[v]);
	free(trace->names);
	free(trace->utilisation);
	memset(trace, 0, sizeof(*trace));
}

static int sim_name_order(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One VM's file in CloudSim's layout: its samples separated by whitespace (one per line in
 * CloudSim's files) or commas; '#' lines are comments. Returns the sample count, or -errno. */
static ssize_t sim_read_vm_file(const char *path, int fraction, double **values_p)
{
	FILE *in = fopen(path, "r");
	char *line = NULL, **fields = NULL;
	size_t line_capacity = 0, field_capacity = 0, count = 0, capacity = 0;
	double *values = NULL;
	ssize_t ret;

	if (!in) {
		ret = -errno;
		fprintf(stderr, "trace: %s: %s\n", path, strerror(errno));
		return ret;
	}
	while (getline(&line, &line_capacity, in) >= 0) {
		char *text = line;
		size_t n;

		while (isspace((unsigned char)*text))
			text++;
		if (*text == '#' || !*text)
			continue;
		n = sim_split(text, &fields, &field_capacity);
		if (n == SIZE_MAX) {
			ret = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			double value;

			if (sim_sample(fields[i], fraction, &value)) {
				fprintf(stderr,
					"trace: %s: sample %zu: '%s' is not a utilisation\n", path,
					count + 1, fields[i]);
				ret = -EINVAL;
				goto out;
			}
			if (count == capacity) {
				size_t grown_capacity = capacity ? 2 * capacity : 512;
				double *grown = realloc(values, grown_capacity * sizeof(*grown));

				if (!grown) {
					ret = -ENOMEM;
					goto out;
				}
				values = grown;
				capacity = grown_capacity;
			}
			values[count++] = value;
		}
	}
	if (ferror(in)) {
		ret = -EIO;
		fprintf(stderr, "trace: %s: read error\n", path);
		goto out;
	}
	ret = (ssize_t)count;
	*values_p = values;
	values = NULL;
out:
	free(values);
	free(fields);
	free(line);
	fclose(in);
	return ret;
}

/* CloudSim's layout: every regular file in dir is a VM named by its file name, in the order of
 * the sorted names (CloudSim deals VM types over its file listing; sorted is the order Java's
 * File.compareTo gives, which plan-sim's CSV keeps). Hidden files are skipped. */
static int sim_trace_load_dir(const char *path, int fraction, struct plan_sim_trace *trace)
{
	DIR *dir = opendir(path);
	char **names = NULL, file[4096];
	size_t count = 0, capacity = 0;
	struct dirent *entry;
	int ret = -EINVAL;

	if (!dir) {
		ret = -errno;
		fprintf(stderr, "trace: %s: %s\n", path, strerror(-ret));
		return ret;
	}
	while ((entry = readdir(dir))) {
		struct stat st;

		if (entry->d_name[0] == '.')
			continue;
		if (snprintf(file, sizeof(file), "%s/%s", path, entry->d_name) >=
		    (int)sizeof(file)) {
			fprintf(stderr, "trace: %s/%s: path too long\n", path, entry->d_name);
			goto out;
		}
		if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (count == capacity) {
			size_t grown_capacity = capacity ? 2 * capacity : 256;
			char **grown = realloc(names, grown_capacity * sizeof(*grown));

			if (!grown) {
				ret = -ENOMEM;
				goto out;
			}
			names = grown;
			capacity = grown_capacity;
		}
		names[count] = strdup(entry->d_name);
		if (!names[count]) {
			ret = -ENOMEM;
			goto out;
		}
		count++;
	}
	if (count == 0) {
		fprintf(stderr, "trace: %s: a directory with no VM files\n", path);
		goto out;
	}
	qsort(names, count, sizeof(*names), sim_name_order);
	trace->vms = count;
	trace->names = calloc(count, sizeof(*trace->names));
	if (!trace->names) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t v = 0; v < count; v++) {
		double *values = NULL;
		ssize_t samples;

		snprintf(file, sizeof(file), "%s/%s", path, names[v]);
		samples = sim_read_vm_file(file, fraction, &values);
		if (samples < 0) {
			ret = (int)samples;
			goto out;
		}
		if (samples == 0 || (v > 0 && (size_t)samples != trace->samples)) {
			fprintf(stderr, "trace: %s: %zd samples, %s had %zu\n", file, samples,
				names[0], v > 0 ? trace->samples : (size_t)0);
			free(values);
			goto out;
		}
		if (v == 0) {
			trace->samples = (size_t)samples;
			trace->utilisation = malloc(count * trace->samples * sizeof(double));
			if (!trace->utilisation) {
				free(values);
				ret = -ENOMEM;
				goto out;
			}
		}
		memcpy(trace->utilisation + v * trace->samples, values,
		       trace->samples * sizeof(double));
		free(values);
		trace->names[v] = names[v];
		names[v] = NULL;
	}
	snprintf(trace->source, sizeof(trace->source), "one file per VM in %s", path);
	ret = 0;
out:
	if (ret == -ENOMEM)
		fprintf(stderr, "trace: %s: out of memory\n", path);
	for (size_t v = 0; v < count; v++)
		free(names[v]);
	free(names);
	closedir(dir);
	if (ret < 0)
		plan_sim_trace_free(trace);
	return ret;
}

int plan_sim_trace_load(const char *path, int fraction, struct plan_sim_trace *trace)
{
	FILE *in;
	char *line = NULL, **fields = NULL;
	size_t line_capacity = 0, field_capacity = 0, rows = 0, row_capacity = 0, width = 0;
	double **values = NULL;
	char **row_names = NULL, **header = NULL;
	size_t header_count = 0;
	int named_rows = -1, ret = -EINVAL;
	ssize_t got;

	struct stat st;

	memset(trace, 0, sizeof(*trace));
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return sim_trace_load_dir(path, fraction, trace);
	in = fopen(path, "r");
	if (!in) {
		ret = -errno;
		fprintf(stderr, "trace: %s: %s\n", path, strerror(-ret));
		return ret;
	}
	while ((got = getline(&line, &line_capacity, in)) >= 0) {
		size_t count, first;
		char *text = line;

		while (isspace((unsigned char)*text))
			text++;
		if (*text == '#') {
			if (!trace->source[0]) {
				text++;
				while (*text == ' ')
					text++;
				snprintf(trace->source, sizeof(trace->source), "%s", text);
				trace->source[strcspn(trace->source, "\r\n")] = '\0';
			}
			continue;
		}
		if (!*text)
			continue;
		count = sim_split(text, &fields, &field_capacity);
		if (count == SIZE_MAX) {
			ret = -ENOMEM;
			goto out;
		}
		if (count == 0)
			continue;
		if (named_rows < 0 && rows == 0 && !header) {
			int all_names = 1;

			for (size_t i = 0; i < count; i++)
				all_names &= !sim_is_number(fields[i]);
			if (all_names && count > 1) {
				/* A header of VM names: one VM per column. */
				header = calloc(count, sizeof(*header));
				if (!header) {
					ret = -ENOMEM;
					goto out;
				}
				header_count = count;
				for (size_t i = 0; i < count; i++) {
					header[i] = strdup(fields[i]);
					if (!header[i]) {
						ret = -ENOMEM;
						goto out;
					}
				}
				continue;
			}
			named_rows = !sim_is_number(fields[0]);
		}
		first = named_rows > 0 ? 1 : 0;
		if (width == 0)
			width = count - first;
		if (count - first != width || width == 0) {
			fprintf(stderr, "trace: %s: row %zu has %zu samples, the first had %zu\n",
				path, rows + 1, count - first, width);
			goto out;
		}
		if (rows == row_capacity) {
			size_t capacity = row_capacity ? 2 * row_capacity : 256;
			double **grown_values = realloc(values, capacity * sizeof(*values));
			char **grown_names;

			if (grown_values)
				values = grown_values;
			grown_names = grown_values
					      ? realloc(row_names, capacity * sizeof(*row_names))
					      : NULL;
			if (grown_names)
				row_names = grown_names;
			if (!grown_values || !grown_names) {
				ret = -ENOMEM;
				goto out;
			}
			row_capacity = capacity;
		}
		values[rows] = malloc(width * sizeof(**values));
		row_names[rows] = strdup(first ? fields[0] : "");
		if (!values[rows] || !row_names[rows]) {
			free(values[rows]);
			free(row_names[rows]);
			ret = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < width; i++) {
			double value;

			if (sim_sample(fields[first + i], fraction, &value)) {
				fprintf(stderr,
					"trace: %s: row %zu sample %zu: '%s' is not a "
					"utilisation\n",
					path, rows + 1, i + 1, fields[first + i]);
				rows++;
				goto out;
			}
			values[rows][i] = value;
		}
		rows++;
	}
	if (rows == 0) {
		fprintf(stderr, "trace: %s: no samples\n", path);
		goto out;
	}
	if (header && header_count != width) {
		fprintf(stderr, "trace: %s: %zu names for %zu columns\n", path, header_count,
			width);
		goto out;
	}
	/* Rows are VMs unless a header named the columns. */
	trace->vms = header ? width : rows;
	trace->samples = header ? rows : width;
	trace->utilisation = malloc(trace->vms * trace->samples * sizeof(double));
	trace->names = calloc(trace->vms, sizeof(*trace->names));
	if (!trace->utilisation || !trace->names) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t v = 0; v < trace->vms; v++) {
		char fallback[32];

		for (size_t t = 0; t < trace->samples; t++)
			trace->utilisation[v * trace->samples + t] =
				header ? values[t][v] : values[v][t];
		snprintf(fallback, sizeof(fallback), "vm%zu", v + 1);
		trace->names[v] = strdup(header		   ? header[v]
					 : row_names[v][0] ? row_names[v]
							   : fallback);
		if (!trace->names[v]) {
			ret = -ENOMEM;
			goto out;
		}
	}
	ret = 0;
out:
	if (ret == -ENOMEM)
		fprintf(stderr, "trace: %s: out of memory\n", path);
	for (size_t r = 0; r < rows; r++) {
		free(values[r]);
		free(row_names[r]);
	}
	for (size_t i = 0; i < header_count; i++)
		free(header[i]);
	free(header);
	free(values);
	free(row_names);
	free(fields);
	free(line);
	fclose(in);
	if (ret < 0)
		plan_sim_trace_free(trace);
	return ret;
}
