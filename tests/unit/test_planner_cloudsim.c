/* SPDX-License-Identifier: MIT */
/* tests/unit/test_planner_cloudsim.c - plan-sim's CloudSim model by arithmetic: the SPECpower
 * tables and CloudSim's energy rule, the SLA metrics, CloudSim's statistics, and each detector
 * and selection policy on one host worked out by hand. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bench/plan-sim-cloudsim.h"

#define G4 0 /* 2 x 1860 MIPS = 3720 */
#define G5 1

static struct cs_policy policy(const char *text)
{
	struct cs_policy p;

	assert_int_equal(cs_policy_parse(text, &p), 0);
	return p;
}

static void test_power_interpolates_specpower_tables(void **state)
{
	(void)state;
	assert_float_equal(cs_power(G4, 0), 86, 1e-9);
	assert_float_equal(cs_power(G4, 1), 117, 1e-9);
	assert_float_equal(cs_power(G4, 0.05), 87.7, 1e-9);
	assert_float_equal(cs_power(G4, 0.55), 104, 1e-9);
	assert_float_equal(cs_power(G5, 0.25), 103, 1e-9);
	assert_float_equal(cs_power(G5, 1), 135, 1e-9);
	assert_true(cs_power(G5, 1.01) < 0);
	assert_true(cs_power(G4, -0.1) < 0);
}

static void test_energy_is_zero_from_idle_unless_asked(void **state)
{
	(void)state;
	/* mean of both ends: (102 + 117) / 2 W for 10 s */
	assert_float_equal(cs_energy(G4, 0.5, 1, 10, 0), 1095, 1e-9);
	assert_float_equal(cs_energy(G4, 0, 0.5, 10, 0), 0, 1e-9);
	assert_float_equal(cs_energy(G4, 0, 0, 10, 1), 860, 1e-9);
}

static void test_metrics_multiply_up(void **state)
{
	struct cs_result r;

	(void)state;
	/* 1 kWh; 50 of 1000 active seconds short; 7 of 10000 MIPS-seconds lost to migration */
	cs_metrics(3.6e6, 50, 1000, 7, 10000, &r);
	assert_float_equal(r.energy_kwh, 1, 1e-12);
	assert_float_equal(r.slatah, 0.05, 1e-12);
	assert_float_equal(r.pdm, 0.0007, 1e-12);
	assert_float_equal(r.slav, 0.000035, 1e-12);
	assert_float_equal(r.esv, 0.000035, 1e-12);
}

static void test_statistics_as_cloudsim_computes_them(void **state)
{
	double odd[] = {4, 1, 100, 3, 2}, eight[] = {8, 1, 7, 2, 6, 3, 5, 4};
	double line[] = {5, 8, 11, 14}, intercept, slope;

	(void)state;
	assert_float_equal(cs_median(odd, 5), 3, 1e-12);
	assert_float_equal(cs_median(eight, 8), 4.5, 1e-12);
	/* deviations from 3: 1 2 97 0 1 */
	assert_float_equal(cs_mad(odd, 5), 1, 1e-12);
	/* quartiles at round(0.25 * 9) = 2nd and round(0.75 * 9) = 7th of 1..8 */
	assert_float_equal(cs_iqr(eight, 8), 5, 1e-12);
	assert_int_equal(cs_linear_fit(line, 4, &intercept, &slope), 0);
	assert_float_equal(intercept, 2, 1e-9);
	assert_float_equal(slope, 3, 1e-9);
	assert_int_equal(cs_linear_fit(line, 1, &intercept, &slope), -EINVAL);
}

static void test_r_squared_is_one_for_an_exact_combination(void **state)
{
	double a[] = {1, 3, 2, 5, 4, 6}, b[] = {2, 1, 4, 3, 6, 5}, y[6], noisy[6];
	const double *x[] = {a, b};

	(void)state;
	for (int i = 0; i < 6; i++) {
		y[i] = 1 + 2 * a[i] - b[i];
		noisy[i] = y[i] + (i % 2 ? 1 : -1);
	}
	assert_float_equal(cs_r_squared(x, 2, y, 6), 1, 1e-9);
	assert_true(cs_r_squared(x, 2, noisy, 6) < 1);
	assert_true(cs_r_squared(x, 2, y, 3) < 0); /* fewer samples than coefficients + 1 */
}

static struct cs_test_vm vm(double mips, int ram, double request)
{
	struct cs_test_vm v = {.mips = mips, .ram = ram, .request = request};

	return v;
}

static void fill_history(struct cs_test_vm *v, size_t length, double newest, double step)
{
	v->history_length = length;
	for (size_t i = 0; i < length; i++)
		v->history[i] = newest - step * (double)i;
}

static void test_static_threshold_compares_requested_share(void **state)
{
	struct cs_policy thr = policy("thr-mmt:0.8");
	struct cs_test_vm over[] = {vm(2000, 870, 1800), vm(2000, 870, 1200)};	/* 3000 / 3720 */
	struct cs_test_vm under[] = {vm(2000, 870, 1800), vm(2000, 870, 1100)}; /* 2900 / 3720 */

	(void)state;
	assert_int_equal(cs_test_detect(&thr, G4, over, 2), 1);
	assert_int_equal(cs_test_detect(&thr, G4, under, 2), 0);
}

static void test_mad_and_iqr_fall_back_to_0_7_without_12_samples(void **state)
{
	struct cs_policy mad = policy("mad-mmt:2.5"), iqr = policy("iqr-mmt:1.5");
	struct cs_test_vm vms[] = {vm(3720, 870, 2700)}; /* 0.726 of the host */

	(void)state;
	fill_history(&vms[0], 11, 0.5, 0);
	assert_int_equal(cs_test_detect(&mad, G4, vms, 1), 1);
	assert_int_equal(cs_test_detect(&iqr, G4, vms, 1), 1);
	/* a steady host (deviation 0) may run up to 100 % */
	fill_history(&vms[0], 12, 0.5, 0);
	assert_int_equal(cs_test_detect(&mad, G4, vms, 1), 0);
	assert_int_equal(cs_test_detect(&iqr, G4, vms, 1), 0);
}

static void test_mad_limit_shrinks_with_deviation(void **state)
{
	struct cs_policy mad = policy("mad-mmt:2.5");
	struct cs_test_vm vms[] = {vm(3720, 870, 0.85 * 3720)};

	(void)state;
	/* alternating 0.4 / 0.6: median 0.5, MAD 0.1, limit 1 - 2.5 * 0.1 = 0.75 < 0.85 */
	vms[0].history_length = 12;
	for (size_t i = 0; i < 12; i++)
		vms[0].history[i] = i % 2 ? 0.4 : 0.6;
	assert_int_equal(cs_test_detect(&mad, G4, vms, 1), 1);
	vms[0].request = 0.7 * 3720;
	assert_int_equal(cs_test_detect(&mad, G4, vms, 1), 0);
}

static void test_regression_forecasts_one_interval_past_the_window(void **state)
{
	struct cs_policy lr = policy("lr-mmt:1.2");
	struct cs_test_vm vms[] = {vm(3720, 870, 0)};

	(void)state;
	/* oldest 0.05 .. newest 0.95: 0.1 per sample, -0.05 at x = 0; at x = 11: 1.05, x 1.2 */
	fill_history(&vms[0], 10, 0.95, 0.1);
	assert_int_equal(cs_test_detect(&lr, G4, vms, 1), 1);
	/* flat at 0.8: 0.96 after the safety factor */
	fill_history(&vms[0], 10, 0.8, 0);
	assert_int_equal(cs_test_detect(&lr, G4, vms, 1), 0);
	/* 9 samples: the static 0.7 on the current request instead */
	fill_history(&vms[0], 9, 0.1, 0);
	vms[0].request = 0.75 * 3720;
	assert_int_equal(cs_test_detect(&lr, G4, vms, 1), 1);
}

/* 4000 MIPS asked of 3720, every VM known at one sample: rmig's overload chance is 1 */
static void overloaded_host(struct cs_test_vm *vms)
{
	vms[0] = vm(2000, 1740, 1500);
	vms[1] = vm(2000, 613, 1000);
	vms[2] = vm(2000, 870, 500);
	vms[3] = vm(2000, 870, 1000);
	for (int i = 0; i < 4; i++)
		fill_history(&vms[i], 1, vms[i].request / 2000, 0);
}

static void test_rmig_detects_an_overload_worth_a_move(void **state)
{
	struct cs_policy rmig = policy("rmig");
	struct cs_test_vm vms[4];

	(void)state;
	overloaded_host(vms);
	assert_int_equal(cs_test_detect(&rmig, G4, vms, 4), 1);
	vms[3].request = 700; /* 3700 of 3720 */
	assert_int_equal(cs_test_detect(&rmig, G4, vms, 4), 0);
}

static void test_selections_pick_by_their_rule(void **state)
{
	struct cs_policy mmt = policy("thr-mmt"), mu = policy("thr-mu"), cost = policy("rmig");
	struct cs_policy mc = policy("lr-mc");
	struct cs_test_vm vms[4], corr[3];

	(void)state;
	overloaded_host(vms);
	assert_int_equal(cs_test_select(&mmt, G4, vms, 4), 1); /* 613 MB */
	assert_int_equal(cs_test_select(&mu, G4, vms, 4), 2);  /* 25 % */
	/* each of 0, 1, 3 relieves it as well, but 500 MIPS x 13.9 s is the least lost */
	assert_int_equal(cs_test_select(&cost, G4, vms, 4), 2);
	/* VMs 1 and 2 move together (1 is a line of 2 plus a small wobble), VM 0 on its own: the
	 * VM taken is one of the pair */
	for (int i = 0; i < 3; i++)
		corr[i] = vm(1000, 870, 100);
	for (size_t i = 0; i < 8; i++) {
		corr[0].history[i] = (double)((i * 7) % 5) / 10;
		corr[2].history[i] = (double)((i * 3) % 8) / 10;
		corr[1].history[i] = 0.1 + 0.5 * corr[2].history[i] + (i % 3 ? 0.01 : -0.01);
	}
	for (int i = 0; i < 3; i++)
		corr[i].history_length = 8;
	assert_int_not_equal(cs_test_select(&mc, G4, corr, 3), 0);
	assert_int_not_equal(cs_test_select(&mc, G4, corr, 3), -1);
}

static void test_rmig_leaves_a_host_no_move_relieves(void **state)
{
	struct cs_policy cost = policy("rmig");
	struct cs_test_vm vms[4];

	(void)state;
	overloaded_host(vms);
	vms[3].request = 700;
	assert_int_equal(cs_test_select(&cost, G4, vms, 4), -1);
}

/* A switched-off G4 and a G5 running at 50 % with steady VMs, a 300-MIPS VM to place. CloudSim
 * charges the off host only P(8 %) - P(0) = 2.74 W against 2.82 W on the running one, so it
 * wakes the G4; rmig charges the 88.74 W the G4 draws once on and fills the running G5. */
static void test_rmig_fills_a_running_host_before_waking_one(void **state)
{
	struct cs_policy thr = policy("thr-mmt:0.8"), rmig = policy("rmig");
	struct cs_test_vm running[2] = {vm(2000, 1740, 1330), vm(2000, 1740, 1330)};
	struct cs_test_vm leaving = vm(500, 613, 300);
	struct cs_test_host hosts[2] = {{G4, NULL, 0}, {G5, running, 2}};

	(void)state;
	fill_history(&running[0], 12, 1330.0 / 2000, 0);
	fill_history(&running[1], 12, 1330.0 / 2000, 0);
	fill_history(&leaving, 12, 300.0 / 500, 0);
	assert_int_equal(cs_test_place(&thr, hosts, 2, &leaving), 0);
	assert_int_equal(cs_test_place(&rmig, hosts, 2, &leaving), 1);
}

/* A G4 at 70 % whose two VMs swing by 1400 MIPS from one step to the next: a 300-MIPS VM takes
 * it to 78 %, under ThrMmt's 0.8, so CloudSim packs it there; rmig puts the chance that it
 * exceeds 3720 MIPS at the next step near 1/3, 100 s of overload expected against a 9.8 s
 * move, and does not take the host past that (no other host: the VM stays). */
static void test_rmig_does_not_pack_a_volatile_host(void **state)
{
	struct cs_policy thr = policy("thr-mmt:0.8"), rmig = policy("rmig");
	struct cs_test_vm busy[2] = {vm(2000, 870, 1300), vm(2000, 870, 1300)};
	struct cs_test_vm leaving = vm(500, 613, 300);
	struct cs_test_host hosts[1] = {{G4, busy, 2}};

	(void)state;
	for (int v = 0; v < 2; v++) {
		busy[v].history_length = 12;
		for (size_t i = 0; i < 12; i++)
			busy[v].history[i] = i % 2 ? 0.3 : 1.0;
	}
	fill_history(&leaving, 12, 300.0 / 500, 0);
	assert_int_equal(cs_test_place(&thr, hosts, 1, &leaving), 0);
	assert_int_equal(cs_test_place(&rmig, hosts, 1, &leaving), -1);
	/* the same VMs held steady: rmig takes it too */
	for (int v = 0; v < 2; v++)
		fill_history(&busy[v], 12, 0.65, 0);
	assert_int_equal(cs_test_place(&rmig, hosts, 1, &leaving), 0);
}

static void test_policy_names_parse(void **state)
{
	struct cs_policy p;

	(void)state;
	assert_int_equal(cs_policy_parse("iqr-mc:1.5", &p), 0);
	assert_int_equal(p.detect, CS_DETECT_IQR);
	assert_int_equal(p.select, CS_SELECT_MC);
	assert_float_equal(p.parameter, 1.5, 1e-12);
	assert_int_equal(cs_policy_parse("mad", &p), 0);
	assert_float_equal(p.parameter, 2.5, 1e-12);
	assert_int_equal(cs_policy_parse("thr-xyz", &p), -EINVAL);
	assert_int_equal(cs_policy_parse("dvfs-mmt", &p), -EINVAL);
	assert_int_equal(cs_policy_parse("lr:abc", &p), -EINVAL);
	assert_int_equal(cs_policy_parse("rmig:10", &p), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_interpolates_specpower_tables),
		cmocka_unit_test(test_energy_is_zero_from_idle_unless_asked),
		cmocka_unit_test(test_metrics_multiply_up),
		cmocka_unit_test(test_statistics_as_cloudsim_computes_them),
		cmocka_unit_test(test_r_squared_is_one_for_an_exact_combination),
		cmocka_unit_test(test_static_threshold_compares_requested_share),
		cmocka_unit_test(test_mad_and_iqr_fall_back_to_0_7_without_12_samples),
		cmocka_unit_test(test_mad_limit_shrinks_with_deviation),
		cmocka_unit_test(test_regression_forecasts_one_interval_past_the_window),
		cmocka_unit_test(test_rmig_detects_an_overload_worth_a_move),
		cmocka_unit_test(test_selections_pick_by_their_rule),
		cmocka_unit_test(test_rmig_leaves_a_host_no_move_relieves),
		cmocka_unit_test(test_rmig_fills_a_running_host_before_waking_one),
		cmocka_unit_test(test_rmig_does_not_pack_a_volatile_host),
		cmocka_unit_test(test_policy_names_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
