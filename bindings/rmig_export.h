/* SPDX-License-Identifier: MIT */
/* bindings/rmig_export.h - marks the functions librmig.so exports; everything else is built
 * with hidden visibility, and bindings/rmig.map names the exported symbols. Not installed. */
#ifndef RMIG_EXPORT_H
#define RMIG_EXPORT_H

#define RMIG_EXPORT __attribute__((visibility("default")))

#endif /* RMIG_EXPORT_H */
