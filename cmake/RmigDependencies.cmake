# SPDX-License-Identifier: MIT
# Finds rmig's dependencies (all from Debian) and fails with the package to install.
find_package(PkgConfig QUIET)
find_package(Threads REQUIRED)

# rmig_find_dep(NAME HEADER LIBRARY DEBIAN_PACKAGE [OPTION]): imported target Rmig::NAME. With
# OPTION (e.g. RMIG_RDMA), the failure also says how to build without the dependency.
function(rmig_find_dep name header library package)
	set(without "")
	if(ARGC GREATER 4)
		set(without " or configure with -D${ARGV4}=OFF")
	endif()
	find_path(RMIG_${name}_INCLUDE_DIR ${header})
	find_library(RMIG_${name}_LIBRARY ${library})
	if(NOT RMIG_${name}_INCLUDE_DIR OR NOT RMIG_${name}_LIBRARY)
		message(FATAL_ERROR "rmig needs ${header} and lib${library} "
			"(install the Debian package '${package}': apt-get install ${package}, "
			"or run scripts/setup.sh${without})")
	endif()
	add_library(Rmig::${name} UNKNOWN IMPORTED)
	set_target_properties(Rmig::${name} PROPERTIES
		IMPORTED_LOCATION "${RMIG_${name}_LIBRARY}"
		INTERFACE_INCLUDE_DIRECTORIES "${RMIG_${name}_INCLUDE_DIR}")
	message(STATUS "rmig: ${name}: ${RMIG_${name}_LIBRARY}")
endfunction()

# Optional ones are looked for only when their option (top-level CMakeLists.txt) is on.
if(RMIG_RDMA)
	rmig_find_dep(ibverbs infiniband/verbs.h ibverbs libibverbs-dev RMIG_RDMA)
	rmig_find_dep(rdmacm rdma/rdma_cma.h rdmacm librdmacm-dev RMIG_RDMA)
else()
	message(STATUS "rmig: RDMA off (-DRMIG_RDMA=OFF): no rdma:// transport, no rdma-core needed")
endif()
if(RMIG_NUMA)
	rmig_find_dep(numa numa.h numa libnuma-dev RMIG_NUMA)
endif()
if(RMIG_HUGETLBFS)
	rmig_find_dep(hugetlbfs hugetlbfs.h hugetlbfs libhugetlbfs-dev RMIG_HUGETLBFS)
endif()
rmig_find_dep(xxhash xxhash.h xxhash libxxhash-dev)
# A libxxhash built with its x86 dispatcher (Debian's amd64 one is) picks AVX2 or AVX-512 at
# run time for the same XXH3 values: pages read from memory hash about 1.7x as fast here as
# with the SSE2 code XXH3_64bits() runs.
include(CheckSymbolExists)
set(CMAKE_REQUIRED_INCLUDES ${RMIG_xxhash_INCLUDE_DIR})
set(CMAKE_REQUIRED_LIBRARIES ${RMIG_xxhash_LIBRARY})
check_symbol_exists(XXH3_64bits_dispatch xxh_x86dispatch.h RMIG_HAVE_XXH3_DISPATCH)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_LIBRARIES)
rmig_find_dep(jansson jansson.h jansson libjansson-dev)
if(RMIG_BUILD_TESTS)
	rmig_find_dep(cmocka cmocka.h cmocka libcmocka-dev)
endif()
