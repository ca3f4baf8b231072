/* SPDX-License-Identifier: MIT */
/* engine/methods/method.c - the methods' registry: enum rmig_method to its ops. */
#include "engine/methods/method.h"
#include "rmig.h"

const struct method_ops *method_ops_find(uint32_t method)
{
	static const struct method_ops *const all[] = {
		[RMIG_METHOD_PRECOPY] = &method_precopy_ops,
		[RMIG_METHOD_PREDICT] = &method_predict_ops,
		[RMIG_METHOD_TSMC] = &method_tsmc_ops,
		[RMIG_METHOD_POSTCOPY] = &method_postcopy_ops,
		[RMIG_METHOD_HYBRID] = &method_hybrid_ops,
		[RMIG_METHOD_AUTO] = &method_auto_ops,
	};

	if (method >= sizeof(all) / sizeof(all[0]) || !all[method])
		return &method_precopy_ops;
	return all[method];
}
