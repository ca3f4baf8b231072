# Finds rmig's dependencies (all from Debian) and fails with the package to install.
find_package(PkgConfig QUIET)
find_package(Threads REQUIRED)

# rmig_find_dep(NAME HEADER LIBRARY DEBIAN_PACKAGE): imported target Rmig::NAME.
function(rmig_find_dep name header library package)
	find_path(RMIG_${name}_INCLUDE_DIR ${header})
	find_library(RMIG_${name}_LIBRARY ${library})
	if(NOT RMIG_${name}_INCLUDE_DIR OR NOT RMIG_${name}_LIBRARY)
		message(FATAL_ERROR "rmig needs ${header} and lib${library} "
			"(install the Debian package '${package}': apt-get install ${package}, "
			"or run scripts/setup.sh)")
	endif()
	add_library(Rmig::${name} UNKNOWN IMPORTED)
	set_target_properties(Rmig::${name} PROPERTIES
		IMPORTED_LOCATION "${RMIG_${name}_LIBRARY}"
		INTERFACE_INCLUDE_DIRECTORIES "${RMIG_${name}_INCLUDE_DIR}")
	message(STATUS "rmig: ${name}: ${RMIG_${name}_LIBRARY}")
endfunction()

rmig_find_dep(ibverbs infiniband/verbs.h ibverbs libibverbs-dev)
rmig_find_dep(rdmacm rdma/rdma_cma.h rdmacm librdmacm-dev)
rmig_find_dep(numa numa.h numa libnuma-dev)
rmig_find_dep(hugetlbfs hugetlbfs.h hugetlbfs libhugetlbfs-dev)
rmig_find_dep(xxhash xxhash.h xxhash libxxhash-dev)
rmig_find_dep(jansson jansson.h jansson libjansson-dev)
if(RMIG_BUILD_TESTS)
	rmig_find_dep(cmocka cmocka.h cmocka libcmocka-dev)
endif()
